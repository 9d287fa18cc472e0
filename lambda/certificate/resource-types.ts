/** Custom resource types of the certificate handler (kept apart so the construct does not load the AWS SDK). */
export const REQUEST_RESOURCE_TYPE = 'Custom::GatewayCertificateRequest';
export const WAIT_RESOURCE_TYPE = 'Custom::GatewayCertificateWait';
