# aisoc: the CLI and the forwarder service (`aisoc serve`).
FROM python:3.11-slim
WORKDIR /opt/aisoc
COPY pyproject.toml README.md ./
COPY aisoc ./aisoc
COPY rules ./rules
COPY atlas ./atlas
COPY playbooks ./playbooks
RUN pip install --no-cache-dir ".[supply-chain,parquet]" && useradd --system --uid 10001 aisoc
USER aisoc
EXPOSE 8787
ENTRYPOINT ["aisoc"]
CMD ["serve", "--config", "/etc/aisoc/aisoc.yml"]
