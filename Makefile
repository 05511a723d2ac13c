PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-peers lint venv clean manifests crds package

# setup.py builds the optional native span pass (a C compiler needed; without one the
# install still works and the daemon says it runs the Python span pass).
$(STAMP): pyproject.toml setup.py src/agent_sre/tracing/_wirepass.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/agent-sre run $(if $(CONFIG),--config $(CONFIG),)

test: $(STAMP)
	bash tests/setup-services.sh
	@# setup-services may just have brought the compiler: build the native span pass then
	@$(BIN)/python -c "import agent_sre.tracing._wirepass" 2>/dev/null \
		|| $(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/ingest.py --replay-only
	$(BIN)/python bench/span_pass_wire.py
	$(BIN)/python bench/span_pricing.py
	$(BIN)/python bench/receive_path.py
	$(BIN)/python bench/replay_buffer.py
	$(BIN)/python bench/replay_threads.py
	$(BIN)/python bench/durable_queue.py
	$(BIN)/python bench/slo.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/stages.py
	$(BIN)/python bench/big_body.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/event_loop.py
	$(BIN)/python bench/operator_render.py
	$(BIN)/python bench/operator_status.py

# The chart's values schema (its `config` from the daemon's models) and the plain Kubernetes
# manifests rendered from the chart (both checked in sync by tests/deploy).
manifests: $(STAMP)
	$(BIN)/python deployments/render_values_schema.py
	$(BIN)/python deployments/render_manifests.py
	$(BIN)/python deployments/render_dashboards.py

# The operator's CRDs (deployments/helm/agent-sre/crds/) from the daemon's models (checked by
# tests/deploy/test_crds.py).
crds: $(STAMP)
	$(BIN)/python -m agent_sre_operator.crds

# `helm package` of the chart into dist/ (after `helm lint --strict`); publishing is one more
# command where a registry can be reached: python deployments/package_chart.py --push oci://...
package: $(STAMP)
	$(BIN)/python deployments/package_chart.py dist

clean:
	rm -rf $(VENV) .agent-sre build dist *.egg-info

# Peers measured side by side (LiteLLM's proxy), installed in their own venv, never a
# dependency of the project.
PEERS := .venv-peers
$(PEERS)/bin/litellm:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install -q "litellm[proxy]"

bench-peers: $(STAMP) $(PEERS)/bin/litellm
	$(BIN)/python bench/proxy.py --litellm $(PEERS)/bin/litellm
