"""Runs fakesnow's HTTP server with its shared database persisted to a directory.

fakesnow's own `-s` mode keeps the shared database in memory (its `-d` flag
only applies to the patch mode), so the stack starts the same Starlette app
with the shared instance pointed at a project-local directory. Clients need
nothing fakesnow-specific: they log in and query as against Snowflake.

usage: fakesnow_server.py HOST PORT DB_DIR
"""

import asyncio
import sys

import uvicorn
from fakesnow.instance import FakeSnow

import fakesnow.server as server


# fakesnow's sessions share one DuckDB connection, which refuses a second
# statement while one runs ("connection is busy with another call") instead
# of waiting. Snowflake runs concurrent statements; the emulator queues them.
_one_at_a_time = asyncio.Lock()
_run_in_threadpool = server.run_in_threadpool


async def _serialized(func, *args, **kwargs):
    async with _one_at_a_time:
        return await _run_in_threadpool(func, *args, **kwargs)


server.run_in_threadpool = _serialized


def main() -> int:
    host, port, db_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server.shared_fs = FakeSnow(db_path=db_dir)
    uvicorn.run(server.app, host=host, port=port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
