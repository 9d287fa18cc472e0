/**
 * The custom resources' logic: deploy-managed rules in the rules table (an in-memory table that
 * enforces the same conditions as DynamoDB) and the certificate request/wait (a fake ACM).
 */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { deployManagedItems, deployRuleId, deployRules, type RuleItem, type RuleItemKey, type RuleTableClient } from '../../lambda/deploy-rules/deploy-rules';
import { onEvent as deployRulesOnEvent } from '../../lambda/deploy-rules/custom-resource';
import { idempotencyToken, isComplete, onEvent as certificateOnEvent, REQUEST_RESOURCE_TYPE, WAIT_RESOURCE_TYPE, type CertificateApi } from '../../lambda/certificate/certificate';
import { validateManifest } from '../../lambda/core/validate';
import type { Rule } from '../../lambda/core/schema';

type Item = Record<string, unknown> & RuleItemKey;

/** A table with DynamoDB's conditional semantics for the three calls. */
class MemoryTable implements RuleTableClient {
  readonly items = new Map<string, Item>();
  calls = 0;
  private key = (k: RuleItemKey) => `${k.domain}\n${k.rule_id}`;
  async listDeployManaged(): Promise<RuleItemKey[]> {
    this.calls++;
    return [...this.items.values()].filter((i) => i.source === 'deploy').map((i) => ({ domain: i.domain, rule_id: i.rule_id }));
  }
  async putDeployManaged(_t: string, item: RuleItem): Promise<boolean> {
    this.calls++;
    const prev = this.items.get(this.key(item));
    if (prev && prev.source !== 'deploy') return false;
    this.items.set(this.key(item), { ...item });
    return true;
  }
  async deleteDeployManaged(_t: string, key: RuleItemKey): Promise<boolean> {
    this.calls++;
    const prev = this.items.get(this.key(key));
    if (!prev || prev.source !== 'deploy') return false;
    this.items.delete(this.key(key));
    return true;
  }
}

const valid = (rules: unknown[]): Rule[] => {
  const v = validateManifest({ rules });
  if (v.errors.length) throw new Error(JSON.stringify(v.errors));
  return v.rules;
};
const FILE = { type: 'file-v1', domain: 'DL.example.com', 'incoming-path': '/a/{v}.tgz', 'outgoing-url': 'https://x.example.net/{v}.tgz', 'package-id': 'a' };
const PIXEL = { type: 'pixel-v1', domain: 'dl.example.com', 'incoming-path': '/p.png', 'package-id': 'docs' };
const CATCH = { type: 'catch-all-v1', domain: 'docs.example.com', 'package-id': 'docs', 'redirect-target-domain': 'acme.github.io' };

describe('deploy-managed items', () => {
  test('ids are stable (key order does not matter), differ per rule, and keys are the lower-case domain', () => {
    const [a] = valid([FILE]);
    const reordered = valid([Object.fromEntries(Object.entries(FILE).reverse())])[0];
    expect(deployRuleId(a)).toBe(deployRuleId(reordered));
    expect(deployRuleId(a)).toMatch(/^deploy:file-v1:[0-9a-f]{24}$/);
    expect(deployRuleId(valid([PIXEL])[0])).not.toBe(deployRuleId(a));
    const items = deployManagedItems(valid([FILE, PIXEL, FILE]));
    expect(items.map((i) => [i.domain, i.position, i.source])).toEqual([['dl.example.com', 0, 'deploy'], ['dl.example.com', 1, 'deploy']]);
    expect(JSON.parse(items[0].rule)).toMatchObject({ type: 'file-v1', 'incoming-path': '/a/{v}.tgz' });
  });

  test('a deploy writes the given rules and removes deploy-managed ones no longer given', async () => {
    const table = new MemoryTable();
    expect(await deployRules(table, 't', valid([FILE, PIXEL]))).toEqual({ written: 2, deleted: 0, skipped: [] });
    expect(table.items.size).toBe(2);
    expect(await deployRules(table, 't', valid([PIXEL, CATCH]))).toEqual({ written: 2, deleted: 1, skipped: [] });
    expect([...table.items.values()].map((i) => JSON.parse(i.rule as string).type).sort()).toEqual(['catch-all-v1', 'pixel-v1']);
    // Positions follow the new order.
    expect([...table.items.values()].find((i) => i.domain === 'dl.example.com')?.position).toBe(0);
  });

  test('run-time rules are never written over or deleted', async () => {
    const table = new MemoryTable();
    const runtime: Item = { domain: 'dl.example.com', rule_id: 'rt-1', source: 'cli', rule: '{}' };
    table.items.set('dl.example.com\nrt-1', runtime);
    const [file] = valid([FILE]);
    const clash: Item = { domain: 'dl.example.com', rule_id: deployRuleId(file), source: 'cli', rule: '{"kept":true}' };
    table.items.set(`dl.example.com\n${clash.rule_id}`, clash);
    const r = await deployRules(table, 't', [file]);
    expect(r).toEqual({ written: 0, deleted: 0, skipped: [{ domain: 'dl.example.com', rule_id: clash.rule_id }] });
    expect(await deployRules(table, 't', [])).toEqual({ written: 0, deleted: 0, skipped: [] });
    expect(table.items.get('dl.example.com\nrt-1')).toBe(runtime);
    expect(table.items.get(`dl.example.com\n${clash.rule_id}`)?.rule).toBe('{"kept":true}');
  });
});

describe('deploy-rules custom resource', () => {
  const event = (type: 'Create' | 'Update' | 'Delete', props: Record<string, string>, physical?: string): CloudFormationCustomResourceEvent => ({
    RequestType: type, ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:x', ResponseURL: 'https://example.invalid', StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/s/1',
    RequestId: 'r', LogicalResourceId: 'DeployRules', ResourceType: 'Custom::GatewayDeployRules', ResourceProperties: { ServiceToken: 'x', ...props },
    ...(physical && { PhysicalResourceId: physical }), ...(type === 'Update' && { OldResourceProperties: {} }),
  } as CloudFormationCustomResourceEvent);
  const props = { TableName: 'gw-rules', RulesBucket: 'cdk-assets', RulesKey: 'rules.json' };

  test('create reads the rules object, validates it and writes it; delete removes the deploy-managed items', async () => {
    const table = new MemoryTable();
    const reads: string[] = [];
    const deps = { table, readObject: async (b: string, k: string) => (reads.push(`${b}/${k}`), JSON.stringify({ rules: [FILE, CATCH] })) };
    const created = await deployRulesOnEvent(event('Create', props), deps);
    expect(created).toEqual({ PhysicalResourceId: 'deploy-rules:gw-rules', Data: { Written: 2, Deleted: 0, Skipped: 0 } });
    expect(reads).toEqual(['cdk-assets/rules.json']);
    await deployRulesOnEvent(event('Delete', props, 'deploy-rules:gw-rules'), deps);
    expect(table.items.size).toBe(0);
  });

  test('an invalid rules object fails the deployment with the engine\'s message', async () => {
    const deps = { table: new MemoryTable(), readObject: async () => JSON.stringify({ rules: [{ type: 'file-v1', domain: 'x.example.com' }] }) };
    await expect(deployRulesOnEvent(event('Create', props), deps)).rejects.toThrow(/rule 0 \(file-v1, x\.example\.com\), field "incoming-path": is required/);
  });

  test('deleting a resource of another table leaves this table alone', async () => {
    const table = new MemoryTable();
    await deployRulesOnEvent(event('Delete', props, 'deploy-rules:old-table'), { table, readObject: async () => '' });
    expect(table.calls).toBe(0);
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
