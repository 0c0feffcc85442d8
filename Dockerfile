# Sourcebook's image: the API (`serve`), ingestion workers (`worker`) and one-shot commands (`db upgrade`).
# Multi-stage: dependencies are built in the first stage; the runtime stage has no compilers and runs as
# an unprivileged user. Build: docker build -t sourcebook:0.1.0 .   (GPU hosts: --build-arg TORCH_INDEX=)
FROM python:3.11.11-slim-bookworm AS build

# The CPU build of torch by default (an image about 2 GB smaller); empty for PyPI's CUDA build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# torch first and alone, then everything else held to the lock (constraints.txt pins torch too).
RUN if [ -n "$TORCH_INDEX" ]; then pip install "torch==2.13.0" --index-url "$TORCH_INDEX"; \
    else pip install "torch==2.13.0"; fi
COPY pyproject.toml constraints.txt README.md ./
COPY sourcebook ./sourcebook
COPY ingest ./ingest
COPY retrieval ./retrieval
COPY answer ./answer
COPY guardrails ./guardrails
COPY serving ./serving
COPY evals ./evals
RUN pip install -c constraints.txt -e .
COPY migrations ./migrations
COPY prompts ./prompts
COPY data/samples ./data/samples
COPY data/guards ./data/guards

FROM python:3.11.11-slim-bookworm AS runtime

RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/sourcebook sourcebook \
    && install -d -o sourcebook -g sourcebook /var/lib/sourcebook
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SOURCEBOOK_DATA_DIR=/var/lib/sourcebook \
    SOURCEBOOK_LOG_FORMAT=json
WORKDIR /app
USER sourcebook:sourcebook
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
ENTRYPOINT ["sourcebook"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
