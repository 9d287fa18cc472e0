/**
 * Event shapes as AWS delivers them to the gateway's handlers, for the adapter tests: a Lambda
 * function URL request (payload format 2.0) as it arrives from CloudFront with origin access
 * control, and CloudFront viewer-request (CloudFront Functions) and origin-request (Lambda@Edge)
 * events.
 */
import type { CloudFrontRequestEvent, LambdaFunctionURLEvent } from 'aws-lambda';

export interface UrlEventOptions {
  method?: string;
  /** Path as the viewer sent it (goes into x-gateway-raw-path). */
  rawPath: string;
  /** What the function URL front end puts into `rawPath` (it decodes some escapes); default: rawPath. */
  decodedPath?: string;
  rawQueryString?: string;
  host?: string;
  headers?: Record<string, string>;
  cookies?: string[];
  body?: Buffer | string;
  base64?: boolean;
}

/** A function URL event for a request that went viewer -> CloudFront (edge function, OAC) -> function URL. */
export function functionUrlEvent(o: UrlEventOptions): LambdaFunctionURLEvent {
  const method = o.method ?? 'GET';
  const body = o.body === undefined ? undefined : Buffer.isBuffer(o.body) ? o.body : Buffer.from(o.body, 'utf8');
  const base64 = o.base64 ?? (body !== undefined);
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: o.decodedPath ?? o.rawPath,
    rawQueryString: o.rawQueryString ?? '',
    cookies: o.cookies,
    headers: {
      host: 'abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws',
      // Origin access control's signature over the origin request: never the viewer's credentials.
      authorization: 'AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20250101/eu-west-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=0f1e2d',
      'x-amz-date': '20250101T120000Z',
      'x-amz-security-token': 'IQoJb3JpZ2luX2VjEXAMPLE',
      'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'x-amz-source-account': '123456789012',
      'x-amz-source-arn': 'arn:aws:cloudfront::123456789012:distribution/E1EXAMPLE',
      'x-forwarded-for': '203.0.113.9, 130.176.1.2',
      'x-forwarded-proto': 'https',
      'x-forwarded-port': '443',
      'x-amzn-trace-id': 'Root=1-67890abc-0123456789abcdef01234567',
      'x-amz-cf-id': 'z5n0u4FYPqW5EXAMPLE==',
      via: '2.0 4b2a1d5e.cloudfront.net (CloudFront)',
      'x-forwarded-host': o.host ?? 'dl.example.com',
      'x-gateway-raw-path': o.rawPath,
      'cloudfront-viewer-address': '203.0.113.9:51234',
      'cloudfront-viewer-country': 'DE',
      'cloudfront-viewer-country-region': 'BE',
      'cloudfront-viewer-asn': '3320',
      'cloudfront-is-desktop-viewer': 'true',
      'cloudfront-forwarded-proto': 'https',
      ...(body !== undefined && { 'content-length': String(body.length) }),
      ...o.headers,
    },
    queryStringParameters: undefined,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abcdefghijklmnopqrstuvwxyz012345',
      domainName: 'abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws',
      domainPrefix: 'abcdefghijklmnopqrstuvwxyz012345',
      http: { method, path: o.decodedPath ?? o.rawPath, protocol: 'HTTP/1.1', sourceIp: '130.176.1.2', userAgent: 'Amazon CloudFront' },
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      routeKey: '$default',
      stage: '$default',
      time: '01/Jan/2025:12:00:00 +0000',
      timeEpoch: 1735732800000,
    },
    body: body === undefined ? undefined : base64 ? body.toString('base64') : body.toString('utf8'),
    isBase64Encoded: base64,
  };
}

/** A CloudFront Functions viewer-request event (JavaScript runtime 2.0 shape). */
export function viewerRequestEvent(o: { method?: string; uri: string; host: string; headers?: Record<string, string>; querystring?: Record<string, { value: string }> }) {
  const headers: Record<string, { value: string }> = { host: { value: o.host } };
  for (const [k, v] of Object.entries(o.headers ?? {})) headers[k] = { value: v };
  return {
    version: '1.0',
    context: { distributionDomainName: 'd111111abcdef8.cloudfront.net', distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-request', requestId: '4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==' },
    viewer: { ip: '198.51.100.11' },
    request: { method: o.method ?? 'GET', uri: o.uri, querystring: o.querystring ?? {}, headers, cookies: {} },
  };
}

/** A Lambda@Edge origin-request event with the body included (the behavior's includeBody). */
export function originRequestEvent(o: { method: string; uri: string; body?: Buffer; truncated?: boolean }): CloudFrontRequestEvent {
  return {
    Records: [{
      cf: {
        config: { distributionDomainName: 'd111111abcdef8.cloudfront.net', distributionId: 'EDFDVBD6EXAMPLE', eventType: 'origin-request', requestId: '4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==' },
        request: {
          clientIp: '203.0.113.178',
          method: o.method,
          uri: o.uri,
          querystring: 'a=1',
          headers: {
            host: [{ key: 'Host', value: 'abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws' }],
            'content-type': [{ key: 'Content-Type', value: 'application/json' }],
            'x-forwarded-host': [{ key: 'X-Forwarded-Host', value: 'dl.example.com' }],
          },
          body: {
            action: 'read-only',
            data: (o.body ?? Buffer.alloc(0)).toString('base64'),
            encoding: 'base64',
            inputTruncated: o.truncated ?? false,
          },
          origin: {
            custom: {
              customHeaders: {}, domainName: 'abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws', keepaliveTimeout: 5, path: '', port: 443, protocol: 'https', readTimeout: 60, sslProtocols: ['TLSv1.2'],
            },
          },
        },
      },
    }],
  };
}
