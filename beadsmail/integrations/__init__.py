"""How coding agents plug in: the MCP server, ``bd setup`` and ``bd prime``.

Each piece translates names, argument shapes and output onto the same domain
API that ``bd`` uses (``mail``, ``tasks``, ``channels``, ``agents``, ``wake``);
nothing here stores or folds data of its own.

- ``surface``: the agent's operations as plain functions (no MCP import), the
  identity a session acts as, and the one-line error text.
- ``mcpserver``: those operations as MCP tools and resources, over stdio
  (``bd mcp``) or streamable HTTP (mounted in ``bd serve``). Needs the ``mcp``
  extra and is imported only there.
- ``prime``: the short context an agent reads when it starts.
- ``agentconf`` and ``configfiles``: what ``bd setup`` writes into each agent's
  configuration files, merged without touching the user's own entries.
"""
