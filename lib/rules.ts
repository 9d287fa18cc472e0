/**
 * Rules for the construct: typed factories for every rule type of the schema
 * (lambda/core/schema.ts), or a Scarf manifest file. Validation is the engine's own
 * (validateManifest) and runs at synth time, so a bad rule fails `cdk synth` with the same
 * message `artifact-gateway rules validate` prints.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ManifestError, validateManifest, type Problem } from '../lambda/core/validate';
import type { DockerMode, Rule } from '../lambda/core/schema';

/** How a docker rule serves registry requests (the schema's `mode`). */
export enum DockerServeMode {
  /** Redirect clients known to re-authenticate after a redirect, proxy the others. */
  AUTO = 'auto',
  /** Always redirect to the upstream registry. */
  REDIRECT = 'redirect',
  /** Always proxy through the gateway (blob bytes still bypass Lambda, see `streamingRegistries`). */
  PROXY = 'proxy',
}

interface CommonRuleProps {
  /** Public host name the rule answers on, e.g. `cr.example.com`. */
  readonly domain: string;
}

export interface DockerRuleProps extends CommonRuleProps {
  /** Image path as clients write it after the domain, e.g. `acme/rocket`. */
  readonly repositoryName: string;
  /** Upstream registry: a host such as `ghcr.io` (https), or a base URL. */
  readonly registry: string;
  /** Package id recorded in events. */
  readonly packageId: string;
  /** Image path at the upstream when it differs. @default - same as `repositoryName` */
  readonly upstreamRepositoryName?: string;
  /** @default DockerServeMode.AUTO */
  readonly mode?: DockerServeMode;
}

export interface DockerPatternRuleProps extends CommonRuleProps {
  /** Image glob, e.g. `acme/*` or `acme/{api,web}`. */
  readonly pattern: string;
  /** Recorded as `auto_create_rule_id` in events. */
  readonly ruleId: string;
  /** Upstream registry: a host such as `ghcr.io` (https), or a base URL. */
  readonly registry: string;
  /** @default DockerServeMode.AUTO */
  readonly mode?: DockerServeMode;
}

export interface FileRuleProps extends CommonRuleProps {
  /** RFC 6570 template matched against the raw path, e.g. `/rocket/{version}/rocket-{os}-{arch}.tar.gz`. */
  readonly incomingPath: string;
  /** Redirect target template using the same variables. @default - no redirect: answer 200 and only record (a beacon) */
  readonly outgoingUrl?: string;
  /** Package id recorded in events. */
  readonly packageId: string;
}

export interface FileRegexRuleProps extends CommonRuleProps {
  /** Regular expression searched in the raw path; named groups become variables. */
  readonly incomingPath: string;
  /** Redirect target template using the named groups. @default - no redirect: answer 200 and only record */
  readonly outgoingUrl?: string;
  /** Package id recorded in events. */
  readonly packageId: string;
}

export interface PythonRuleProps extends CommonRuleProps {
  /** Project name, e.g. `rocket`. */
  readonly packageName: string;
  /** Distribution file name, e.g. `rocket-1.2.0-py3-none-any.whl`. */
  readonly fileName: string;
  /** Version recorded in events. */
  readonly version: string;
  /** Where downloads are redirected. */
  readonly backendUrl: string;
  /** Package id recorded in events. */
  readonly packageId: string;
  /** `sha256` digest shown on the index link. @default - no hash on the link */
  readonly sha256?: string;
  /** Rendered as `data-requires-python`. @default - none */
  readonly requiresPython?: string;
}

export interface CatchAllRuleProps extends CommonRuleProps {
  /** Package id recorded in events. */
  readonly packageId: string;
  /** Redirect to the same path on this host. @default - no redirect: answer 200 and only record */
  readonly redirectTargetDomain?: string;
}

export interface TelemetryRuleProps extends CommonRuleProps {
  /** Exact path, e.g. `/events`. */
  readonly incomingPath: string;
  /** Package id recorded in events. */
  readonly packageId: string;
  /** Accepted Bearer tokens, plain or `sha256:<hex>`. @default - an open endpoint */
  readonly accessTokens?: string[];
}

export interface PixelRuleProps extends CommonRuleProps {
  /** Exact path of the image, e.g. `/a.png`. */
  readonly incomingPath: string;
  /** Package id recorded in events. @default - none */
  readonly packageId?: string;
}

/** One rule, built by a factory method; it is validated with the others when the gateway is synthesized. */
export class GatewayRule {
  /** `docker-v1`: one container image. */
  static docker(props: DockerRuleProps): GatewayRule {
    return new GatewayRule({
      type: 'docker-v1', domain: props.domain, 'repository-name': props.repositoryName, registry: props.registry, 'package-id': props.packageId,
      ...(props.upstreamRepositoryName !== undefined && { 'upstream-repository-name': props.upstreamRepositoryName }),
      ...(props.mode !== undefined && { mode: props.mode as DockerMode }),
    });
  }

  /** `docker-v2`: every image matching a pattern. */
  static dockerPattern(props: DockerPatternRuleProps): GatewayRule {
    return new GatewayRule({
      type: 'docker-v2', domain: props.domain, pattern: props.pattern, 'rule-id': props.ruleId, registry: props.registry,
      ...(props.mode !== undefined && { mode: props.mode as DockerMode }),
    });
  }

  /** `file-v1`: downloads matched by a URI template. */
  static file(props: FileRuleProps): GatewayRule {
    return new GatewayRule({ type: 'file-v1', domain: props.domain, 'incoming-path': props.incomingPath, 'outgoing-url': props.outgoingUrl ?? null, 'package-id': props.packageId });
  }

  /** `file-v2`: downloads matched by a regular expression. */
  static fileRegex(props: FileRegexRuleProps): GatewayRule {
    return new GatewayRule({ type: 'file-v2', domain: props.domain, 'incoming-path': props.incomingPath, 'outgoing-url': props.outgoingUrl ?? null, 'package-id': props.packageId });
  }

  /** `python-v1`: one distribution file in the domain's `/simple/` index. */
  static python(props: PythonRuleProps): GatewayRule {
    return new GatewayRule({
      type: 'python-v1', domain: props.domain, 'package-name': props.packageName, 'file-name': props.fileName, version: props.version,
      'backend-url': props.backendUrl, 'package-id': props.packageId,
      ...(props.sha256 !== undefined && { 'hash-value': { type: 'sha256', hash: props.sha256 } }),
      ...(props.requiresPython !== undefined && { 'requires-python': props.requiresPython }),
    });
  }

  /** `catch-all-v1`: everything else on the domain. */
  static catchAll(props: CatchAllRuleProps): GatewayRule {
    return new GatewayRule({
      type: 'catch-all-v1', domain: props.domain, 'package-id': props.packageId,
      ...(props.redirectTargetDomain !== undefined && { 'redirect-target-domain': props.redirectTargetDomain }),
    });
  }

  /** `telemetry-v1`: an endpoint that accepts POSTed JSON events. */
  static telemetry(props: TelemetryRuleProps): GatewayRule {
    return new GatewayRule({
      type: 'telemetry-v1', domain: props.domain, 'incoming-path': props.incomingPath, 'package-id': props.packageId,
      ...(props.accessTokens !== undefined && { 'access-tokens': props.accessTokens }),
    });
  }

  /** `pixel-v1`: a 1x1 transparent PNG that records a view. */
  static pixel(props: PixelRuleProps): GatewayRule {
    return new GatewayRule({ type: 'pixel-v1', domain: props.domain, 'incoming-path': props.incomingPath, 'package-id': props.packageId ?? null });
  }

  /** A rule written in the manifest format (Scarf field names), e.g. for rule types without a factory. */
  static fromManifestRule(rule: Record<string, unknown>): GatewayRule {
    return new GatewayRule({ ...rule });
  }

  private constructor(
    /** The rule in the manifest format. */
    readonly manifestRule: Record<string, unknown>,
  ) {}
}

/** Rules after validation. */
export interface ResolvedRules {
  readonly rules: Rule[];
  readonly warnings: Problem[];
  /** Where the rules came from, for messages. */
  readonly source: string;
}

/** The rules a gateway serves: a list of rules, or a manifest. */
export class GatewayRules {
  /** Rules built with the GatewayRule factories, in precedence order (manifest order). */
  static of(...rules: GatewayRule[]): GatewayRules {
    return new GatewayRules(() => ({ rules: rules.map((r) => r.manifestRule) }), 'the rules given to ArtifactGateway');
  }

  /** A Scarf Gateway manifest (or this project's superset) read at synth time. */
  static fromManifestFile(file: string): GatewayRules {
    const resolved = path.resolve(file);
    return new GatewayRules(() => {
      let text: string;
      try {
        text = fs.readFileSync(resolved, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new Error(`cannot read the rules manifest ${resolved}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
      }
      try {
        return JSON.parse(text) as unknown;
      } catch (e) {
        throw new ManifestError([{ index: null, type: null, domain: null, field: null, message: `not valid JSON: ${(e as Error).message}` }], [], resolved);
      }
    }, resolved);
  }

  /** A parsed manifest document (`{"rules": [...]}`). */
  static fromManifest(document: unknown): GatewayRules {
    return new GatewayRules(() => document, 'the manifest given to ArtifactGateway');
  }

  private constructor(private readonly load: () => unknown, private readonly source: string) {}

  /** Validates with the engine's rules; throws the engine's ManifestError (every problem) when any rule is invalid. */
  resolve(): ResolvedRules {
    const v = validateManifest(this.load());
    if (v.errors.length) throw new ManifestError(v.errors, v.warnings, this.source);
    return { rules: v.rules, warnings: v.warnings, source: this.source };
  }
}
