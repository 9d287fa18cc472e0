/** Entry points of the certificate custom resources: the AWS SDK wiring around certificate.ts. */
import { ACMClient, DeleteCertificateCommand, DescribeCertificateCommand, RequestCertificateCommand, ResourceNotFoundException } from '@aws-sdk/client-acm';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { isComplete, onEvent, type CertificateApi } from './certificate';

const acm = new ACMClient({});
export const acmApi: CertificateApi = {
  async request(domains, token) {
    const out = await acm.send(new RequestCertificateCommand({
      DomainName: domains[0],
      SubjectAlternativeNames: domains.length > 1 ? [...domains] : undefined,
      ValidationMethod: 'DNS',
      IdempotencyToken: token,
    }));
    if (!out.CertificateArn) throw new Error('ACM returned no certificate ARN');
    return out.CertificateArn;
  },
  async describe(arn) {
    const out = await acm.send(new DescribeCertificateCommand({ CertificateArn: arn }));
    const c = out.Certificate;
    return {
      status: c?.Status ?? 'UNKNOWN',
      reason: c?.FailureReason,
      records: (c?.DomainValidationOptions ?? []).map((o) => (o.ResourceRecord?.Name && o.ResourceRecord.Type && o.ResourceRecord.Value
        ? { name: o.ResourceRecord.Name, type: o.ResourceRecord.Type, value: o.ResourceRecord.Value }
        : null)),
    };
  },
  async remove(arn) {
    try {
      await acm.send(new DeleteCertificateCommand({ CertificateArn: arn }));
    } catch (e) {
      if (!(e instanceof ResourceNotFoundException)) throw e;
    }
  },
};

export const onEventHandler = (event: CloudFormationCustomResourceEvent) => onEvent(event, acmApi);
export const isCompleteHandler = (event: CloudFormationCustomResourceEvent) => isComplete(event, acmApi);
