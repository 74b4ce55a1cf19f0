# The Livery image: one image for the operator, the control API and the
# reference tenant app. The first argument picks the program:
#   docker run IMAGE operator | control-api --host 0.0.0.0 --port 8000 | tenant-app --host 0.0.0.0 --port 8000
# Build from the repository root: docker build -t livery:0.1.0 .

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/livery
COPY pyproject.toml README.md /src/
COPY livery /src/livery
COPY operator /src/operator
COPY control_api /src/control_api
COPY tenant_app /src/tenant_app
COPY runtime /src/runtime
RUN /opt/livery/bin/pip install /src \
    && /opt/livery/bin/python -m compileall -q /opt/livery


FROM python:3.11-slim

# The pods run with a read-only root filesystem, so Python must not try to
# write .pyc files; everything was compiled in the build stage.
ENV PATH=/opt/livery/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

# A fixed numeric id, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 livery \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin livery

COPY --from=build /opt/livery /opt/livery

USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
ENTRYPOINT ["livery"]
CMD ["--help"]
