"""Runs fakesnow's HTTP server with its shared database persisted to a directory.

fakesnow's own `-s` mode keeps the shared database in memory (its `-d` flag
only applies to the patch mode), so the stack starts the same Starlette app
with the shared instance pointed at a project-local directory. Clients need
nothing fakesnow-specific: they log in and query as against Snowflake.

usage: fakesnow_server.py HOST PORT DB_DIR
"""

import asyncio
import sys
from collections import OrderedDict

import snowflake.connector.errors
import uvicorn
from fakesnow.cursor import FakeSnowflakeCursor
from fakesnow.dialect import parse_one, syntax_error
from fakesnow.instance import FakeSnow
from sqlglot import exp, parse_one as sqlglot_parse_one
from sqlglot.errors import ParseError

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


# fakesnow translates every statement from Snowflake's SQL to DuckDB's with
# sqlglot: a parse in the server, a parse and some sixty tree rewrites in the
# cursor, another parse to describe the result. For a pipeline that sends
# the same few statements with new bindings, that translation was half of
# the emulator's time. Translations are kept per statement text and session
# (database, schema), for plain queries and DML only: the rewrites of those
# depend on nothing else (statements naming IDENTIFIER(?) or $variables,
# whose rewrites read the bindings or the session, are not kept). Results
# are unchanged; DuckDB still runs every statement.
class _Lru(OrderedDict):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def get(self, key):
        value = super().get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key, value):
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


_KEPT = (exp.Select, exp.Union, exp.Insert, exp.Merge, exp.Update, exp.Delete)
_server_parses = _Lru(512)
_plans = _Lru(512)
_describes = _Lru(512)
_execute = FakeSnowflakeCursor.execute


def _server_parse(command):
    # The server reads the statement's type; it never changes the tree.
    return _server_parses.get(command) or _server_parses.put(command, parse_one(command))


def _plan(cursor, command, params):
    """The statement's DuckDB translation, or None when it is not kept."""
    if "$" in command or "IDENTIFIER" in command.upper():
        return None
    conn = cursor._conn
    key = (command, conn.database, conn.schema, conn.database_set, conn.schema_set)
    plan = _plans.get(key)
    if plan is None:
        try:
            expression = parse_one(command)
            if not isinstance(expression, _KEPT):
                return None
            cursor.check_db_and_schema(expression)
            statements = [cursor._transform(s, params) for s in cursor._transform_explode(expression)]
        except Exception:
            # The uncached path raises its own, Snowflake-shaped error.
            return None
        plan = _plans.put(key, [(s, s.find(exp.Placeholder) is not None) for s in statements])
    return plan


def _execute_kept(self, command, params=None, *args, **kwargs):
    if not kwargs.get("server") or self._conn.nop_regexes:
        return _execute(self, command, params, *args, **kwargs)
    params = kwargs.get("binding_params") or None
    if params is not None and not isinstance(params, (list, dict)):
        params = list(params)
    plan = _plan(self, command, params)
    if plan is None:
        return _execute(self, command, params, *args, **kwargs)
    self._sqlstate = None
    try:
        for statement, bound in plan:
            self._execute(statement, params if bound else None)
    except snowflake.connector.errors.ProgrammingError as e:
        self._sqlstate = e.sqlstate
        raise
    except ParseError as e:
        error = syntax_error(e)
        self._sqlstate = error.sqlstate
        raise error from None
    except NotImplementedError as e:
        msg = f"{e} not implemented"
        raise snowflake.connector.errors.ProgrammingError(msg=msg, errno=9999, sqlstate="99999") from e
    return self


def _describe_last_sql(self):
    with self._conn.cursor() as cur:
        sql = f"DESCRIBE {self._last_sql}"
        expression = _describes.get(sql) or _describes.put(sql, sqlglot_parse_one(sql, read="duckdb"))
        cur._execute(expression, self._last_params)
        return cur.fetchall()


server.parse_one = _server_parse
FakeSnowflakeCursor.execute = _execute_kept
FakeSnowflakeCursor._describe_last_sql = _describe_last_sql


def main() -> int:
    """`host port db_dir [https_port cert key]`: with the last three, the
    same app is also served over HTTPS (the secure stack), so one set of
    databases answers on both ports."""
    host, port, db_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server.shared_fs = FakeSnow(db_path=db_dir)
    configs = [uvicorn.Config(server.app, host=host, port=port, log_level="info")]
    if len(sys.argv) == 7:
        https_port, cert, key = int(sys.argv[4]), sys.argv[5], sys.argv[6]
        configs.append(
            uvicorn.Config(
                server.app, host=host, port=https_port, log_level="info", ssl_certfile=cert, ssl_keyfile=key
            )
        )

    async def serve_all() -> None:
        await asyncio.gather(*(uvicorn.Server(c).serve() for c in configs))

    asyncio.run(serve_all())
    return 0


if __name__ == "__main__":
    sys.exit(main())
