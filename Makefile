# exdesk: `make demo` to see it work, `make test` to check it, `make bench` to measure it.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := .exdesk/demo

.PHONY: venv demo demo-llm test lint typecheck pytest eval bench dev-set clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/exdesk eval evals/data/examples.jsonl --out $(DEMO)/report.json --data-dir $(DEMO)
	$(BIN)/exdesk review list --data-dir $(DEMO)
	$(BIN)/exdesk audit verify --data-dir $(DEMO)
	@echo
	@echo "Review the queue in a browser. Add yourself as the desk's first supervisor (the only"
	@echo "person added without a token; it prints yours on its last line), then two approvers"
	@echo "with your token, then start the service and sign in with a token:"
	@echo "  $(BIN)/exdesk users add YOUR-NAME --role supervisor --data-dir $(DEMO)"
	@echo "  export EXDESK_TOKEN=<the token it printed>"
	@echo "  $(BIN)/exdesk users add ALICE --role approver --data-dir $(DEMO)"
	@echo "  $(BIN)/exdesk users add BOB --role approver --data-dir $(DEMO)"
	@echo "  $(BIN)/exdesk serve --data-dir $(DEMO)     # then open http://127.0.0.1:8000/ui"

# The notes path with a real model on this machine (llama.cpp's server, a 270M GGUF from a
# wheel). Builds llama-cpp-python from source the first time (several minutes on 2 cores),
# portable flags: the native build crashed on this kind of machine.
LLAMA_CMAKE ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_OPENMP=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF
LLM_STAMP := $(VENV)/.llm-local-stamp

$(LLM_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip install --quiet -e '.[dev,llm-local]'
	touch $(LLM_STAMP)

demo-llm: $(LLM_STAMP)
	rm -rf .exdesk/demo-llm
	$(BIN)/python -m evals.llm_local demo --data-dir .exdesk/demo-llm
	$(BIN)/exdesk audit replay --data-dir .exdesk/demo-llm
	$(BIN)/exdesk review list --data-dir .exdesk/demo-llm

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

eval: $(STAMP)
	rm -rf .exdesk/dev
	$(BIN)/exdesk eval evals/data/dev.jsonl --out .exdesk/dev/report.json --data-dir .exdesk/dev

bench: $(STAMP)
	$(BIN)/exdesk bench --out bench-results.json

dev-set: $(STAMP)
	$(BIN)/python -m evals.generate --n 320 --seed 7 --out evals/data/dev.jsonl

clean:
	rm -rf .exdesk .pytest_cache .mypy_cache .ruff_cache
