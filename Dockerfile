# The starter stack on CPU: `docker build -t stackkit .` then
# `docker run -p 8321:8321 -e OPENAI_API_KEY=... stackkit` (every variable the starter reads works here).
# The starter's models (SmolLM2-135M-Instruct and all-MiniLM-L6-v2) are fetched and converted at build time,
# so a container starts offline and answers its first chat without downloading anything.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    STACKKIT_HOME=/data STACKKIT_MODEL_CACHE=/models HF_HUB_OFFLINE=1
WORKDIR /app

# torch first, from PyTorch's CPU index: the default wheel would pull several GB of CUDA libraries
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY stackkit ./stackkit
RUN pip install '.[starter,auth,redis,telemetry,agents,postgres,pgvector]'

# fetch and convert the default chat model once, into the image
RUN python -c "from stackkit import LibraryClient; \
c = LibraryClient('starter'); c.wait_ready(600); c.close()"

RUN useradd --uid 1000 --create-home stackkit && mkdir -p /data && chown -R stackkit /data /models
USER 1000
VOLUME /data
EXPOSE 8321
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8321/v1/health', timeout=2)"
CMD ["stackkit", "run", "starter", "--host", "0.0.0.0", "--port", "8321"]
