/**
 * The custom resources' logic: what the deploy-rules resource asks of the rule store, and the
 * certificate request/wait (a fake ACM).
 */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { onEvent as deployRulesOnEvent } from '../../lambda/deploy-rules/custom-resource';
import { idempotencyToken, isComplete, onEvent as certificateOnEvent, REQUEST_RESOURCE_TYPE, WAIT_RESOURCE_TYPE, type CertificateApi } from '../../lambda/certificate/certificate';
import type { Rule } from '../../lambda/core/schema';

const FILE = { type: 'file-v1', domain: 'DL.example.com', 'incoming-path': '/a/{v}.tgz', 'outgoing-url': 'https://x.example.net/{v}.tgz', 'package-id': 'a' };
const CATCH = { type: 'catch-all-v1', domain: 'docs.example.com', 'package-id': 'docs', 'redirect-target-domain': 'acme.github.io' };

/** Records what the custom resource asks the rule store to do (the sync itself is tested against DynamoDB Local in rules-dynamodb.test.ts). */
class RecordingSync {
  readonly calls: Array<{ table: string; rules: Rule[] }> = [];
  readonly sync = async (table: string, rules: Rule[]) => {
    this.calls.push({ table, rules });
    return { written: rules.length, removed: rules.length ? 0 : 3, kept: [] };
  };
}

describe('deploy-rules custom resource', () => {
  const event = (type: 'Create' | 'Update' | 'Delete', props: Record<string, string>, physical?: string): CloudFormationCustomResourceEvent => ({
    RequestType: type, ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:x', ResponseURL: 'https://example.invalid', StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/s/1',
    RequestId: 'r', LogicalResourceId: 'DeployRules', ResourceType: 'Custom::GatewayDeployRules', ResourceProperties: { ServiceToken: 'x', ...props },
    ...(physical && { PhysicalResourceId: physical }), ...(type === 'Update' && { OldResourceProperties: {} }),
  } as CloudFormationCustomResourceEvent);
  const props = { TableName: 'gw-rules', RulesBucket: 'cdk-assets', RulesKey: 'rules.json' };

  test('create reads the rules object, validates it and syncs it; delete syncs an empty rule set', async () => {
    const rec = new RecordingSync();
    const reads: string[] = [];
    const deps = { sync: rec.sync, readObject: async (b: string, k: string) => (reads.push(`${b}/${k}`), JSON.stringify({ rules: [FILE, CATCH] })) };
    const created = await deployRulesOnEvent(event('Create', props), deps);
    expect(created).toEqual({ PhysicalResourceId: 'deploy-rules:gw-rules', Data: { Written: 2, Deleted: 0, Skipped: 0 } });
    expect(reads).toEqual(['cdk-assets/rules.json']);
    expect(rec.calls.map((c) => [c.table, c.rules.map((r) => r.domain)])).toEqual([['gw-rules', ['dl.example.com', 'docs.example.com']]]);
    const deleted = await deployRulesOnEvent(event('Delete', props, 'deploy-rules:gw-rules'), deps);
    expect(deleted.Data).toEqual({ Written: 0, Deleted: 3, Skipped: 0 });
    expect(rec.calls[1]).toEqual({ table: 'gw-rules', rules: [] });
  });

  test('an invalid rules object fails the deployment with the engine\'s message', async () => {
    const rec = new RecordingSync();
    const deps = { sync: rec.sync, readObject: async () => JSON.stringify({ rules: [{ type: 'file-v1', domain: 'x.example.com' }] }) };
    await expect(deployRulesOnEvent(event('Create', props), deps)).rejects.toThrow(/rule 0 \(file-v1, x\.example\.com\), field "incoming-path": is required/);
    expect(rec.calls).toEqual([]);
  });

  test('deleting a resource of another table leaves this table alone', async () => {
    const rec = new RecordingSync();
    await deployRulesOnEvent(event('Delete', props, 'deploy-rules:old-table'), { sync: rec.sync, readObject: async () => '' });
    expect(rec.calls).toEqual([]);
  });
});

describe('certificate custom resources', () => {
  class FakeAcm implements CertificateApi {
    requested: Array<{ domains: readonly string[]; token: string }> = [];
    removed: string[] = [];
    status = 'PENDING_VALIDATION';
    describes = 0;
    async request(domains: readonly string[], token: string) {
      this.requested.push({ domains, token });
      return `arn:aws:acm:us-east-1:123456789012:certificate/${this.requested.length}`;
    }
    async describe() {
      // ACM publishes the records a moment after the request.
      this.describes++;
      const ready = this.describes > 1;
      return { status: this.status, records: [ready ? { name: '_a.dl.example.com.', type: 'CNAME', value: '_x.acm-validations.aws.' } : null, ready ? { name: '_b.cr.example.com.', type: 'CNAME', value: '_y.acm-validations.aws.' } : null] };
    }
    async remove(arn: string) {
      this.removed.push(arn);
    }
  }
  const base = { ServiceToken: 'x', ResponseURL: 'https://example.invalid', StackId: 'arn:aws:cloudformation:us-east-1:1:stack/c/1', RequestId: 'r', LogicalResourceId: 'Request' };

  test('the request returns at once with one validation record per domain', async () => {
    const acm = new FakeAcm();
    const e = { ...base, RequestType: 'Create', ResourceType: REQUEST_RESOURCE_TYPE, ResourceProperties: { ServiceToken: 'x', Domains: ['dl.example.com', 'cr.example.com'] } } as CloudFormationCustomResourceEvent;
    const r = await certificateOnEvent(e, acm, { pollMs: 1 });
    expect(r.PhysicalResourceId).toBe('arn:aws:acm:us-east-1:123456789012:certificate/1');
    expect(r.Data).toEqual({
      CertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/1',
      Record0Name: '_a.dl.example.com.', Record0Type: 'CNAME', Record0Value: '_x.acm-validations.aws.',
      Record1Name: '_b.cr.example.com.', Record1Type: 'CNAME', Record1Value: '_y.acm-validations.aws.',
    });
    expect(acm.requested[0].token).toBe(idempotencyToken(base.StackId, 'Request', ['dl.example.com', 'cr.example.com']));
    expect(acm.requested[0].token).toMatch(/^[0-9a-f]{32}$/);
  });

  test('records that never appear fail with a clear message', async () => {
    const acm = new FakeAcm();
    acm.describe = async () => ({ status: 'PENDING_VALIDATION', records: [null] });
    const e = { ...base, RequestType: 'Create', ResourceType: REQUEST_RESOURCE_TYPE, ResourceProperties: { ServiceToken: 'x', Domains: ['dl.example.com'] } } as CloudFormationCustomResourceEvent;
    await expect(certificateOnEvent(e, acm, { pollMs: 1, attempts: 3 })).rejects.toThrow(/did not publish the DNS validation records/);
  });

  test('same domains keep the certificate; delete removes it', async () => {
    const acm = new FakeAcm();
    const arn = 'arn:aws:acm:us-east-1:123456789012:certificate/keep';
    const update = { ...base, RequestType: 'Update', ResourceType: REQUEST_RESOURCE_TYPE, PhysicalResourceId: arn, ResourceProperties: { ServiceToken: 'x', Domains: ['dl.example.com'] }, OldResourceProperties: { ServiceToken: 'x', Domains: ['dl.example.com'] } } as CloudFormationCustomResourceEvent;
    expect((await certificateOnEvent(update, acm, { pollMs: 1 })).PhysicalResourceId).toBe(arn);
    expect(acm.requested).toEqual([]);
    const del = { ...base, RequestType: 'Delete', ResourceType: REQUEST_RESOURCE_TYPE, PhysicalResourceId: arn, ResourceProperties: { ServiceToken: 'x', Domains: ['dl.example.com'] } } as CloudFormationCustomResourceEvent;
    await certificateOnEvent(del, acm);
    expect(acm.removed).toEqual([arn]);
  });

  test('the wait completes when ACM has issued the certificate, and fails when validation failed', async () => {
    const acm = new FakeAcm();
    const wait = { ...base, RequestType: 'Create', ResourceType: WAIT_RESOURCE_TYPE, ResourceProperties: { ServiceToken: 'x', CertificateArn: 'arn:c' } } as CloudFormationCustomResourceEvent;
    expect(await isComplete(wait, acm)).toEqual({ IsComplete: false });
    acm.status = 'ISSUED';
    expect(await isComplete(wait, acm)).toEqual({ IsComplete: true });
    acm.status = 'VALIDATION_TIMED_OUT';
    await expect(isComplete(wait, acm)).rejects.toThrow(/VALIDATION_TIMED_OUT/);
  });
});
