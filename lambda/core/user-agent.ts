/**
 * User-Agent parsing into coarse fields. The raw string is never stored: pip's and uv's JSON
 * user agents name the kernel release, distribution, libc and OpenSSL builds, which together can
 * fingerprint a machine; only the client, its version, OS family, CPU architecture and a CI flag
 * are kept. Crawlers, mirrors, scanners and monitors are tagged `bot` so queries can leave them out.
 */
export interface ClientInfo {
  client_name: string | null;
  client_version: string | null;
  os: string | null;
  arch: string | null;
  ci: boolean | null;
  bot: boolean;
}

const ARCH: Record<string, string> = {
  x86_64: 'amd64', amd64: 'amd64', x64: 'amd64', i386: '386', i686: '386', ia32: '386', x86: '386',
  aarch64: 'arm64', arm64: 'arm64', armv7l: 'arm', armv6l: 'arm', arm: 'arm', ppc64le: 'ppc64le', s390x: 's390x', riscv64: 'riscv64',
};
const OS: Record<string, string> = {
  linux: 'linux', darwin: 'darwin', macos: 'darwin', windows: 'windows', win32: 'windows', windows_nt: 'windows', freebsd: 'freebsd',
  openbsd: 'openbsd', netbsd: 'netbsd', android: 'android', ios: 'ios', sunos: 'solaris', aix: 'aix',
};
const normArch = (a: string | undefined | null) => (a ? ARCH[a.toLowerCase()] ?? null : null);
const normOs = (o: string | undefined | null) => (o ? OS[o.toLowerCase()] ?? null : null);
/** Versions are kept as the client states them, without a leading `v`, and bounded. */
const version = (v: string | undefined | null) => (v ? v.replace(/^v(?=\d)/, '').slice(0, 32) : null);

const EMPTY: Readonly<ClientInfo> = Object.freeze({ client_name: null, client_version: null, os: null, arch: null, ci: null, bot: false });
const client = (name: string, v: string | undefined | null, rest: Partial<ClientInfo> = {}): ClientInfo => ({ ...EMPTY, client_name: name, client_version: version(v), ...rest });

/** `os/linux arch/amd64` (Docker, CRI-O and Go tools) or `Linux/6.1.0` tokens (requests_toolbelt style: poetry, conda). */
function platformTokens(ua: string): Pick<ClientInfo, 'os' | 'arch'> {
  const os = normOs(/\bos\/(\w+)/.exec(ua)?.[1]) ?? normOs(/\b(Linux|Darwin|Windows|FreeBSD)\/\S/.exec(ua)?.[1]);
  return { os, arch: normArch(/\barch\/(\w+)/.exec(ua)?.[1]) };
}

/**
 * Crawlers, package mirrors, registry caches, dependency bots, scanners and monitors, by the name
 * they give. A mirror's fetch stands for an unknown number of later installs, so these are not
 * counted as downloads by the shipped queries; `bot_traffic` shows them.
 */
const BOTS: Array<[RegExp, string]> = [
  [/\bGooglebot(?:-Image)?\/([\d.]+)/i, 'googlebot'],
  [/\bbingbot\/([\d.]+)/i, 'bingbot'],
  [/\bYandex\w*\/([\d.]+)/, 'yandexbot'],
  [/\bBaiduspider(?:-\w+)?\/([\d.]+)/i, 'baiduspider'],
  [/\bDuckDuckBot\/([\d.]+)/i, 'duckduckbot'],
  [/\bApplebot\/([\d.]+)/i, 'applebot'],
  [/\bAhrefsBot\/([\d.]+)/i, 'ahrefsbot'],
  [/\bSemrushBot\/?([\d.~a-z]*)/i, 'semrushbot'],
  [/\bGPTBot\/([\d.]+)/i, 'gptbot'],
  [/\bClaudeBot\/([\d.]+)/i, 'claudebot'],
  [/\bCCBot\/([\d.]+)/i, 'ccbot'],
  [/\bBytespider\b/i, 'bytespider'],
  [/\bAmazonbot\/([\d.]+)/i, 'amazonbot'],
  [/\bfacebookexternalhit\/([\d.]+)/i, 'facebookexternalhit'],
  [/\bbandersnatch\/([\w.]+)/i, 'bandersnatch'],
  [/\bdevpi-server\/([\w.]+)/i, 'devpi'],
  [/\bArtifactory\/([\w.]+)/i, 'artifactory'],
  [/\bNexus\/([\w.-]+)/, 'nexus'],
  [/\bpulpcore\/([\w.]+)/i, 'pulp'],
  [/\bproxpi\/([\w.]+)/i, 'proxpi'],
  [/\bverdaccio\/([\w.]+)/i, 'verdaccio'],
  [/\bharbor-registry-client\b/i, 'harbor'],
  [/\bRenovate(?:\s*Bot)?(?:\/([\w.]+))?/i, 'renovate'],
  [/\bdependabot(?:-core)?(?:\/([\w.]+))?/i, 'dependabot'],
  [/\btrivy\/([\w.]+)/i, 'trivy'],
  [/\bsnyk(?:-\w+)?\/([\w.]+)/i, 'snyk'],
  [/\bUptimeRobot\/([\d.]+)/i, 'uptimerobot'],
  [/\bPingdom\b/i, 'pingdom'],
  [/\bBlackbox Exporter\/([\w.]+)/i, 'blackbox-exporter'],
  [/\bkube-probe\/([\w.]+)/, 'kube-probe'],
  [/\bHeadlessChrome\/([\d.]+)/, 'headless-chrome'],
];
/** Anything else that calls itself a bot, crawler, spider or monitor. */
const BOT_WORDS = /bot\b|crawler|spider|slurp|scanner|monitor|uptime|prometheus|headless|preview/i;

function parseBot(ua: string): ClientInfo | null {
  for (const [re, name] of BOTS) {
    const m = re.exec(ua);
    if (m) return { ...client(name, m[1]), ...platformTokens(ua), bot: true };
  }
  return null;
}

function parseDocker(ua: string): ClientInfo | null {
  const m = /^docker\/(\S+)/.exec(ua);
  if (m) return client('docker', m[1], platformTokens(ua));
  const c = /Docker-Client\/(\S+?)(?:\s|\\|\)|$)/.exec(ua);
  if (c || ua.includes('Docker-Client')) return client('docker', c?.[1], { os: normOs(/\((\w+)\)/.exec(ua)?.[1]) });
  return null;
}

/** pip and uv send `name/version {json}` with the platform in the JSON; only coarse fields are read. */
function parsePythonInstaller(ua: string): ClientInfo | null {
  const m = /^(pip|uv)\/(\S+)\s+(\{.*\})\s*$/s.exec(ua);
  if (!m) {
    const bare = /^(pip|uv)\/(\S+)/.exec(ua);
    return bare ? client(bare[1], bare[2]) : null;
  }
  let data: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(m[3]);
    if (parsed && typeof parsed === 'object') data = parsed as Record<string, unknown>;
  } catch {
    // The prefix alone still names the client.
  }
  const system = (data.system ?? {}) as Record<string, unknown>;
  return client(m[1], m[2], {
    os: normOs(typeof system.name === 'string' ? system.name : null),
    arch: normArch(typeof data.cpu === 'string' ? data.cpu : null),
    ci: data.ci === true ? true : null,
  });
}

/** npm, pnpm, yarn and bun: `npm/10.2.4 node/v20.11.0 linux x64 workspaces/false ci/github-actions`. */
function parseNodeInstaller(ua: string): ClientInfo | null {
  const m = /^(npm|pnpm|yarn|bun)\/(\S+)/i.exec(ua);
  if (!m) return null;
  const platform = /node\/\S+\s+(\w+)\s+(\w+)/.exec(ua);
  const ci = /\bci\/(\S+)/.exec(ua);
  return client(m[1].toLowerCase(), m[2], { os: normOs(platform?.[1]), arch: normArch(platform?.[2]), ci: ci ? ci[1] !== 'false' : null });
}

/** `Homebrew/4.2.0 (Macintosh; arm64 Mac OS X 14.2) curl/8.4.0` and `(Linuxbrew; x86_64 Linux ...)`. */
function parseHomebrew(ua: string): ClientInfo | null {
  const m = /^Homebrew\/(\S+)\s+\((\w+);\s*(\w+)/.exec(ua);
  if (!m) return null;
  return client('homebrew', m[1], { os: m[2] === 'Macintosh' ? 'darwin' : 'linux', arch: normArch(m[3]) });
}

function parseBrowser(ua: string): ClientInfo | null {
  if (!ua.startsWith('Mozilla/')) return null;
  const ps = /WindowsPowerShell\/([\d.]+)|PowerShell\/([\d.]+)/.exec(ua);
  if (ps) return client('powershell', (ps[1] ?? ps[2]).split('.')[0], { os: 'windows' });
  const pick = (re: RegExp, name: string) => {
    const m = re.exec(ua);
    return m ? { name, v: m[1] } : null;
  };
  const b = pick(/Edg(?:e|A|iOS)?\/([\d.]+)/, 'edge') ?? pick(/OPR\/([\d.]+)/, 'opera') ?? pick(/(?:Firefox|FxiOS)\/([\d.]+)/, 'firefox')
    ?? pick(/(?:Chrom(?:e|ium)|CriOS)\/([\d.]+)/, 'chrome') ?? pick(/Version\/([\d.]+).*Safari\//, 'safari');
  const os = /Android/.test(ua) ? 'android' : /iPhone|iPad|iPod/.test(ua) ? 'ios' : /Windows/.test(ua) ? 'windows'
    : /Mac OS X|Macintosh/.test(ua) ? 'darwin' : /CrOS/.test(ua) ? 'chromeos' : /Linux|X11/.test(ua) ? 'linux' : null;
  // Major version only: the full build number adds fingerprinting power and no analytic value.
  return { ...EMPTY, client_name: b?.name ?? 'browser', client_version: b ? b.v.split('.')[0] : null, os };
}

/** Registry, package-manager and download clients named by a `name/version` token, most specific first. */
const SIMPLE_CLIENTS: Array<[RegExp, string]> = [
  [/\bcrane\/(v?[\w.+-]+)/, 'crane'],
  [/\bkaniko\/(v?[\w.+-]+)/i, 'kaniko'],
  [/\bgo-containerregistry\/(v?[\w.+-]+)/, 'go-containerregistry'],
  [/\bbuildkit\/(v?[\w.+-]+)/, 'buildkit'],
  [/\bnerdctl\/(v?[\w.+-]+)/, 'nerdctl'],
  [/\bcontainerd\/(v?[\w.+-]+)/, 'containerd'],
  [/\bcri-?o\/(v?[\w.+-]+)/i, 'cri-o'],
  [/\bskopeo\/(v?[\w.+-]+)/i, 'skopeo'],
  [/\bbuildah\/(v?[\w.+-]+)/i, 'buildah'],
  [/\bpodman\/(v?[\w.+-]+)/i, 'podman'],
  [/^containers\/(v?[\w.+-]+) \(github\.com\/containers\/image\)/, 'containers-image'],
  [/^Helm\/(v?[\w.+-]+)/, 'helm'],
  [/^oras\/(v?[\w.+-]+)/i, 'oras'],
  [/^poetry\/(v?[\w.+-]+)/i, 'poetry'],
  [/^pdm\/(v?[\w.+-]+)/i, 'pdm'],
  [/^conda\/(v?[\w.+-]+)/i, 'conda'],
  [/^twine\/(v?[\w.+-]+)/i, 'twine'],
  [/^curl\/(v?[\w.+-]+)/i, 'curl'],
  [/^wget2?\/(v?[\w.+-]+)/i, 'wget'],
  [/^aria2\/(v?[\w.+-]+)/i, 'aria2'],
  [/^Go-http-client\/([\w.]+)/, 'go-http-client'],
  [/^python-requests\/([\w.]+)/, 'python-requests'],
  [/^Python-urllib\/([\w.]+)/, 'python-urllib'],
  [/\baiohttp\/([\w.]+)/, 'aiohttp'],
  [/^node-fetch(?:\/([\w.]+))?/, 'node-fetch'],
  [/^node(?:\/([\w.]+))?$/, 'node'],
  [/^axios\/([\w.]+)/, 'axios'],
  [/^okhttp\/([\w.]+)/, 'okhttp'],
  [/^Java\/([\w.]+)/, 'java'],
  [/^Apache-HttpClient\/([\w.]+)/, 'apache-httpclient'],
  [/^ansible-httpget/, 'ansible'],
];

function parseSimple(ua: string): ClientInfo | null {
  for (const [re, name] of SIMPLE_CLIENTS) {
    const m = re.exec(ua);
    if (m) return client(name, m[1], platformTokens(ua));
  }
  if (ua === 'crio' || /^cri-?o\b/i.test(ua)) return client('cri-o', null);
  return null;
}

function parse(userAgent: string): ClientInfo {
  const ua = userAgent.trim().slice(0, 2048);
  const known = parseBot(ua);
  if (known) return known;
  const parsed = parseDocker(ua) ?? parsePythonInstaller(ua) ?? parseNodeInstaller(ua) ?? parseHomebrew(ua) ?? parseBrowser(ua) ?? parseSimple(ua);
  return { ...(parsed ?? EMPTY), bot: BOT_WORDS.test(ua) };
}

/**
 * Recently parsed User-Agents: a gateway sees the same few strings over and over (one per client
 * release and platform), and parsing one takes microseconds of regular expressions. Bounded in
 * entries and key length; the oldest entry goes first. Memory only, like the request itself.
 */
const CACHE_ENTRIES = 1024;
const CACHE_KEY_CHARS = 512;
const parsedUserAgents = new Map<string, Readonly<ClientInfo>>();

/** The coarse client fields of a User-Agent. The result is shared and frozen: copy it to change it. */
export function parseUserAgent(userAgent: string | undefined): Readonly<ClientInfo> {
  if (!userAgent) return EMPTY;
  let info = parsedUserAgents.get(userAgent);
  if (info !== undefined) return info;
  info = Object.freeze(parse(userAgent));
  if (userAgent.length <= CACHE_KEY_CHARS) {
    if (parsedUserAgents.size >= CACHE_ENTRIES) parsedUserAgents.delete(parsedUserAgents.keys().next().value as string);
    parsedUserAgents.set(userAgent, info);
  }
  return info;
}
