"""The interfaces of the tools beadsmail replaces, translated onto its domain API.

Each module is one tool's surface and nothing more: argument shapes, names and
output in that tool's terms, calling the same functions ``bd`` calls (``mail``,
``agents``, ``channels``, ``tasks``), so whatever one tool writes every other
tool reads. ``beads`` gives messages the fields beads' issues carry; ``btmsg``
and ``bttask`` are the Agents Orchestrator command lines; ``mb`` is the
message-bus skill's ``mb-*`` scripts. The entry points that read the
environment and print live in ``cli.compat``; the Spec 13 WebSocket mode lives
with the server (``server.spec13``). See ``docs/compat.md``.
"""
