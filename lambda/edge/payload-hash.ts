/**
 * Lambda@Edge origin-request function on the cache behaviors whose requests carry a body (the
 * telemetry endpoints). Lambda function URLs behind origin access control reject a POST or PUT
 * unless `x-amz-content-sha256` holds the SHA-256 of the body (Lambda does not accept unsigned
 * payloads); viewers do not send it, and a CloudFront Function cannot read bodies. This function
 * receives the body (the behavior includes it), and adds the header before CloudFront signs.
 */
import { createHash } from 'node:crypto';
import type { CloudFrontRequestEvent, CloudFrontRequestResult } from 'aws-lambda';

export function payloadHashRequest(event: CloudFrontRequestEvent): CloudFrontRequestResult {
  const request = event.Records[0].cf.request;
  const body = request.body;
  if (body?.inputTruncated) {
    // Origin-request functions see at most 1 MB of body: the hash would be wrong and the gateway's limit is far lower anyway.
    return {
      status: '413',
      statusDescription: 'Payload Too Large',
      headers: {
        'content-type': [{ key: 'Content-Type', value: 'application/json' }],
        'cache-control': [{ key: 'Cache-Control', value: 'no-store' }],
      },
      body: JSON.stringify({ error: 'payload_too_large', message: 'request bodies are limited to 1 MB' }),
    };
  }
  const bytes = body?.data ? Buffer.from(body.data, body.encoding === 'base64' ? 'base64' : 'utf8') : Buffer.alloc(0);
  request.headers['x-amz-content-sha256'] = [{ key: 'x-amz-content-sha256', value: createHash('sha256').update(bytes).digest('hex') }];
  return request;
}

export const handler = async (event: CloudFrontRequestEvent): Promise<CloudFrontRequestResult> => payloadHashRequest(event);
