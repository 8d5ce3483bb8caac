# operator-sim as a container: small, non-root, configured by OPERATOR_SIM_* variables.
#
#   docker build -t operator-sim .
#   docker run --rm -p 8080:8080 -e OPERATOR_SIM_ADMIN_TOKEN="$(openssl rand -hex 24)" operator-sim
#
# Off loopback the demo credentials are refused: OPERATOR_SIM_ADMIN_TOKEN is required,
# and messengers are registered through the admin API (see docs/testing.md, "Docker").

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md CHANGELOG.md ./
COPY operator_sim ./operator_sim
COPY fixtures ./fixtures
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --home-dir /data --create-home operator-sim
USER operator-sim
WORKDIR /data
ENV OPERATOR_SIM_HOST=0.0.0.0 \
    OPERATOR_SIM_PORT=8080 \
    OPERATOR_SIM_DB=/data/operator-sim.db \
    OPERATOR_SIM_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('OPERATOR_SIM_PORT', '8080'), timeout=2)" || exit 1
CMD ["operator-sim", "serve"]
