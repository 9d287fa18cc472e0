/**
 * Custom resources for a certificate whose DNS the construct cannot write (no hosted zone):
 *
 * - `Custom::GatewayCertificateRequest` requests the ACM certificate and returns at once with
 *   the DNS validation records, so the certificate stack finishes and `cdk deploy` prints them
 *   as outputs for the operator to add to their DNS;
 * - `Custom::GatewayCertificateWait` (in the stack with the distribution) completes only once
 *   ACM has issued the certificate (provider framework `isComplete`, polled for up to 2 hours).
 */
import { createHash } from 'node:crypto';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { REQUEST_RESOURCE_TYPE, WAIT_RESOURCE_TYPE } from './resource-types';

export { REQUEST_RESOURCE_TYPE, WAIT_RESOURCE_TYPE };

export interface ValidationRecord {
  readonly name: string;
  readonly type: string;
  readonly value: string;
}

/** What the handlers need from ACM; tests give a fake. */
export interface CertificateApi {
  request(domains: readonly string[], idempotencyToken: string): Promise<string>;
  describe(arn: string): Promise<{ status: string; records: Array<ValidationRecord | null>; reason?: string }>;
  /** Deletes the certificate; a certificate that is already gone is not an error. */
  remove(arn: string): Promise<void>;
}

/** ACM idempotency tokens: at most 32 word characters; the same request returns the same certificate. */
export function idempotencyToken(stackId: string, logicalId: string, domains: readonly string[]): string {
  return createHash('sha256').update([stackId, logicalId, ...domains].join('\n')).digest('hex').slice(0, 32);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function onEvent(
  event: CloudFormationCustomResourceEvent,
  api: CertificateApi,
  opts: { pollMs?: number; attempts?: number } = {},
): Promise<{ PhysicalResourceId?: string; Data?: Record<string, string> }> {
  const props = event.ResourceProperties as unknown as { Domains?: string[]; CertificateArn?: string };
  if (event.ResourceType === WAIT_RESOURCE_TYPE) {
    return { PhysicalResourceId: props.CertificateArn ?? 'certificate-wait' };
  }
  const domains = props.Domains ?? [];
  if (event.RequestType === 'Delete') {
    if (event.PhysicalResourceId.startsWith('arn:')) {
      await api.remove(event.PhysicalResourceId);
    }
    return { PhysicalResourceId: event.PhysicalResourceId };
  }
  if (event.RequestType === 'Update') {
    const old = (event.OldResourceProperties as { Domains?: string[] }).Domains ?? [];
    // Same names: keep the certificate. Other names: a new one (CloudFormation then deletes the old one).
    if (old.join(',') === domains.join(',') && event.PhysicalResourceId.startsWith('arn:')) {
      return { PhysicalResourceId: event.PhysicalResourceId, Data: await recordsData(api, event.PhysicalResourceId, opts) };
    }
  }
  const arn = await api.request(domains, idempotencyToken(event.StackId, event.LogicalResourceId, domains));
  return { PhysicalResourceId: arn, Data: await recordsData(api, arn, opts) };
}

/** ACM fills in the validation records a few seconds after the request. */
async function recordsData(api: CertificateApi, arn: string, opts: { pollMs?: number; attempts?: number }): Promise<Record<string, string>> {
  const attempts = opts.attempts ?? 30;
  for (let i = 0; i < attempts; i++) {
    const d = await api.describe(arn);
    if (d.records.length && d.records.every((r) => r !== null)) {
      const data: Record<string, string> = { CertificateArn: arn };
      // One record per name, in the order the names were requested (names may share a record).
      (d.records as ValidationRecord[]).forEach((r, k) => {
        data[`Record${k}Name`] = r.name;
        data[`Record${k}Type`] = r.type;
        data[`Record${k}Value`] = r.value;
      });
      return data;
    }
    await sleep(opts.pollMs ?? 2000);
  }
  throw new Error(`ACM did not publish the DNS validation records of ${arn} in time; retry the deployment`);
}

export async function isComplete(event: CloudFormationCustomResourceEvent, api: CertificateApi): Promise<{ IsComplete: boolean }> {
  if (event.ResourceType !== WAIT_RESOURCE_TYPE || event.RequestType === 'Delete') return { IsComplete: true };
  const arn = (event.ResourceProperties as unknown as { CertificateArn: string }).CertificateArn;
  const d = await api.describe(arn);
  if (d.status === 'ISSUED') return { IsComplete: true };
  if (d.status === 'PENDING_VALIDATION') return { IsComplete: false };
  throw new Error(`certificate ${arn} is ${d.status}${d.reason ? ` (${d.reason})` : ''}: request a new one by changing the domains or deleting the certificate stack`);
}

