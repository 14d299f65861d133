.PHONY: run test test-pg lint fmt migrate bench
run:
	./scripts/run.sh
test:
	./scripts/test.sh
test-pg:
	JIAHE_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/jiahe_test ./scripts/test.sh
lint:
	.venv/bin/ruff check app tests alembic bench && .venv/bin/ruff format --check app tests alembic bench && .venv/bin/mypy app
fmt:
	.venv/bin/ruff format app tests alembic bench && .venv/bin/ruff check --fix app tests alembic bench
migrate:
	.venv/bin/jiahe migrate
bench:
	.venv/bin/python -m bench.register
