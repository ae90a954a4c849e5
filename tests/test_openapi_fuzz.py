"""Schemathesis over the whole OpenAPI spec: no input may produce a 5xx or a hang.

Runs against its own database (committed data, unlike the rest of the suite), on
SQLite and on PostgreSQL, with a bounded number of examples per operation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import text

from kefu.actions.agents import do_create_agent
from kefu.actions.auth import do_create_api_token
from kefu.domain.access import SYSTEM, Role
from kefu.infra.db import make_engine, make_sessionmaker
from kefu.infra.migrate import upgrade
from kefu.settings import Settings
from kefu.web.app import create_app
from tests.conftest import DB_BACKENDS, PG_URL

FUZZ_PG_DB = "kefu_fuzz"
EXAMPLES = 25  # per operation and mode: bounded so `make test` stays fast


def _fuzz_database(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'fuzz.db'}"
    admin = make_engine(PG_URL.rsplit("/", 1)[0] + "/postgres?poolclass=null")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {FUZZ_PG_DB} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {FUZZ_PG_DB}"))
    admin.dispose()
    return PG_URL.rsplit("/", 1)[0] + "/" + FUZZ_PG_DB


@pytest.fixture(scope="module", params=DB_BACKENDS)
def fuzz_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("fuzz")
    url = _fuzz_database(request.param, tmp)
    upgrade(url)
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as s:
        admin = do_create_agent(
            s, SYSTEM, email="fuzz@kx-exchange.example", name="fuzz", role=Role.ADMIN
        )
        raw = do_create_api_token(
            s, SYSTEM, admin, name="fuzz", scopes=["read", "write", "admin"]
        ).raw
    engine.dispose()
    app = create_app(
        Settings(
            data_dir=tmp,
            database_url=url,
            secret_key="fuzz",  # type: ignore[arg-type]
            run_workers=False,
            run_smtp=False,
            contact_jwt_key="fuzz-contact-jwt-key-32-bytes-long!",  # type: ignore[arg-type]
        )
    )
    return {"schema": schemathesis.openapi.from_asgi("/api/v1/openapi.json", app), "token": raw}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_server_error(fuzz_target: dict[str, Any], mode: GenerationMode) -> None:
    """Every operation, valid and invalid inputs: 4xx problem+json or success, never 5xx."""
    headers = {"Authorization": f"Bearer {fuzz_target['token']}"}
    failures: list[str] = []
    operations = [result.ok() for result in fuzz_target["schema"].get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            response = case.call(headers={**headers, **(case.headers or {})})
            label = f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code >= 500:
                failures.append(f"{label}: {response.text[:300]}")
            elif response.status_code >= 400:
                ctype = str(response.headers.get("content-type", ""))
                if "application/problem+json" not in ctype and not ctype.startswith(
                    "application/problem+json"
                ):
                    failures.append(f"{label}: not problem+json ({ctype})")

        try:
            check()
        except Unsatisfiable:
            # No input of this mode exists for the operation (e.g. nothing to make
            # invalid in a parameterless GET); there is nothing to test.
            continue
    assert failures == [], "\n".join(sorted(set(failures))[:20])
