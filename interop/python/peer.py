"""The official Python MCP SDK client (1.x or 2.x) against mcpsim's fakes.

Each command prints one JSON object on its last line, and never a token or a secret:

  peer.py list URL BEARER          initialize, every tools/list page, one tool call
  peer.py token TOKEN_URL ID SECRET basic|form
                                   a client-credentials token, HTTP Basic or form body
  peer.py discover URL ID SECRET   the SDK's own client-credentials provider discovers the
                                   token endpoint (RFC 9728, RFC 8414), then as `list`
"""

import asyncio
import importlib.metadata
import json
import sys

VERSION = importlib.metadata.version("mcp")
V2 = VERSION.startswith("2.")

if V2:
    import httpx2 as httpx  # mcp 2.x is built on httpx2
    from mcp import Client
else:
    import httpx
    from mcp import ClientSession
    from mcp.types import PaginatedRequestParams
from mcp.client.streamable_http import streamable_http_client


class MemoryStorage:
    """The provider's token storage, in memory."""

    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


def text_of(content):
    return [getattr(c, "text", None) for c in content]


async def session_v1(url, http):
    async with streamable_http_client(url, http_client=http) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools, cursor, pages = [], None, 0
            while True:
                params = PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.list_tools(params=params)
                pages += 1
                tools.extend(page.tools)
                cursor = page.nextCursor
                if not cursor:
                    break
            result = await session.call_tool(tools[0].name, {})
            return {
                "sdk": VERSION,
                "protocol": init.protocolVersion,
                "tools": [t.name for t in tools],
                "pages": pages,
                "call": text_of(result.content),
                "is_error": bool(result.isError),
            }


async def session_v2(url, http):
    async with Client(streamable_http_client(url, http_client=http)) as client:
        tools, cursor, pages = [], None, 0
        while True:
            page = await client.list_tools(cursor=cursor)
            pages += 1
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        result = await client.call_tool(tools[0].name, {})
        return {
            "sdk": VERSION,
            "protocol": client.protocol_version,
            "tools": [t.name for t in tools],
            "pages": pages,
            "call": text_of(result.content),
            "is_error": bool(result.is_error),
        }


async def listing(url, http):
    async with http:
        return await (session_v2(url, http) if V2 else session_v1(url, http))


async def main(argv):
    command = argv[1]
    timeout = httpx.Timeout(20.0)
    if command == "list":
        url, bearer = argv[2], argv[3]
        http = httpx.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=timeout)
        return await listing(url, http)
    if command == "token":
        token_url, client_id, secret, how = argv[2], argv[3], argv[4], argv[5]
        async with httpx.AsyncClient(timeout=timeout) as http:
            form = {"grant_type": "client_credentials"}
            if how == "basic":
                response = await http.post(token_url, data=form, auth=(client_id, secret))
            else:
                form.update(client_id=client_id, client_secret=secret)
                response = await http.post(token_url, data=form)
            body = response.json()
            return {
                "sdk": VERSION,
                "status": response.status_code,
                "token_type": body.get("token_type"),
                "expires_in": body.get("expires_in"),
                "has_token": bool(body.get("access_token")),
            }
    if command == "discover":
        from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

        url, client_id, secret = argv[2], argv[3], argv[4]
        storage = MemoryStorage()
        provider = ClientCredentialsOAuthProvider(
            server_url=url,
            storage=storage,
            client_id=client_id,
            client_secret=secret,
            token_endpoint_auth_method="client_secret_basic",
        )
        http = httpx.AsyncClient(auth=provider, timeout=timeout)
        result = await listing(url, http)
        result["had_token"] = storage.tokens is not None
        return result
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv))))
