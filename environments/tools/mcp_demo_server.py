"""The bundled MCP server of `tools/mcp-v0`: the inventories of numbered shops.

Run as a script (`python3 mcp_demo_server.py`) it serves, over stdio with the official
`mcp` package, two tools: `list_items(shop)` (the item names of shop number `shop`) and
`get_item(shop, name)` (its price in cents and units in stock; an error for an unknown
item). Shop N's inventory is made from N alone, so the server keeps no state and one
process serves every episode. The env imports `inventory` to know the answers; the
script needs only the standard library and `mcp`, since it is copied alone into the
sandbox.
"""

from __future__ import annotations

import json
import random

ITEMS = ("anvil", "bucket", "candle", "drill", "easel", "funnel", "globe", "hammer", "inkpot", "jug", "kettle",
         "ladder", "mallet", "needle", "oar", "pulley", "quill", "rope", "saw", "tongs")


def inventory(shop: int) -> dict[str, dict[str, int]]:
    """name -> {"price_cents", "stock"}: six items, all stocks different."""
    rng = random.Random(f"mcp-demo:{shop}")
    names = sorted(rng.sample(ITEMS, 6))
    stocks = rng.sample(range(1, 200), len(names))
    return {name: {"price_cents": rng.randint(50, 5000), "stock": stock} for name, stock in zip(names, stocks)}


def serve() -> None:
    """Serve the shops over stdio until stdin closes."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("shops")

    @server.tool()
    def list_items(shop: int) -> str:
        """The names of all items in shop number `shop`, one per line."""
        return "\n".join(inventory(shop))

    @server.tool()
    def get_item(shop: int, name: str) -> str:
        """An item of shop number `shop`: its price in cents and the units in stock, as JSON."""
        items = inventory(shop)
        if name not in items:
            raise ToolError(f"shop {shop} has no item named {name!r}; call list_items")
        return json.dumps({"name": name, **items[name]})

    server.run("stdio")


if __name__ == "__main__":
    serve()
