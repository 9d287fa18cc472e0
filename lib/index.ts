/** artifact-gateway: the CDK construct library's public API. */
export { ArtifactGateway, type ArtifactGatewayProps } from './artifact-gateway';
export {
  GatewayRule, GatewayRules, DockerServeMode,
  type DockerRuleProps, type DockerPatternRuleProps, type FileRuleProps, type FileRegexRuleProps, type PythonRuleProps,
  type CatchAllRuleProps, type TelemetryRuleProps, type PixelRuleProps, type ResolvedRules,
} from './rules';
export { glueColumns, type GlueColumn } from './analytics';
export { ManifestError } from '../lambda/core/validate';
