// The official TypeScript MCP SDK client against mcpsim's fakes.
//
// Each command prints one JSON object on its last line, and never a token or a secret:
//
//   peer.mjs list URL BEARER            initialize, every tools/list page, one tool call
//   peer.mjs token TOKEN_URL ID SECRET basic|form
//                                       a client-credentials token, HTTP Basic or form body
//   peer.mjs discover URL ID SECRET     the SDK's own ClientCredentialsProvider discovers the
//                                       token endpoint (RFC 9728, RFC 8414), then as `list`
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { createRequire } from 'node:module';

const sdk = createRequire(import.meta.url)('@modelcontextprotocol/sdk/package.json').version;
const [command, ...args] = process.argv.slice(2);

async function listing(transport) {
  const client = new Client({ name: 'mcpsim-interop', version: '0.1.0' });
  await client.connect(transport);
  const tools = [];
  let cursor;
  let pages = 0;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined);
    pages += 1;
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  const result = await client.callTool({ name: tools[0].name, arguments: {} });
  const protocol = transport.protocolVersion;
  await transport.terminateSession();
  await client.close();
  return {
    sdk,
    protocol,
    tools: tools.map((t) => t.name),
    pages,
    call: result.content.map((c) => c.text ?? null),
    is_error: Boolean(result.isError),
  };
}

async function main() {
  if (command === 'list') {
    const [url, bearer] = args;
    return listing(new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { Authorization: `Bearer ${bearer}` } },
    }));
  }
  if (command === 'token') {
    const [tokenUrl, id, secret, how] = args;
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    if (how === 'basic') {
      headers.authorization = `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
    } else {
      form.set('client_id', id);
      form.set('client_secret', secret);
    }
    const response = await fetch(tokenUrl, { method: 'POST', headers, body: form });
    const body = await response.json();
    return {
      sdk,
      status: response.status,
      token_type: body.token_type ?? null,
      expires_in: body.expires_in ?? null,
      has_token: Boolean(body.access_token),
    };
  }
  if (command === 'discover') {
    const [url, id, secret, issuer] = args;
    const provider = new ClientCredentialsProvider({
      clientId: id,
      clientSecret: secret,
      expectedIssuer: issuer,
    });
    const result = await listing(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
    result.had_token = Boolean(provider.tokens()?.access_token);
    return result;
  }
  throw new Error(`unknown command ${command}`);
}

console.log(JSON.stringify(await main()));
