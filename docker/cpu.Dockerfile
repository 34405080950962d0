# syntax=docker/dockerfile:1
# qpo for the CPU processes: scheduler, reward workers, sim-llm, migrations, data fetch, and a
# CPU trainer for the sim profile. Build context: the repository root (docker/compose.yaml).
# The packages come from scripts/install-deps.sh, the script ./qpo.sh installs from.

FROM debian:12-slim AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
# .git comes along (see .dockerignore) so that qpo --version names the commit.
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQPO_CUDA=OFF -DQPO_WERROR=ON \
    && cmake --build build -j"$(nproc)" --target qpo
# The label below is the build argument; this step fails the build when it is not what the
# binary says, so the label can only ever be `qpo --version`'s text.
ARG QPO_VERSION=""
RUN docker/check-version.sh build/qpo "$QPO_VERSION"

FROM debian:12-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/qpo qpo \
    && mkdir -p /var/cache/qpo /var/lib/qpo && chown qpo:qpo /var/cache/qpo /var/lib/qpo
COPY --from=build /src/build/qpo /usr/local/bin/qpo
COPY docker/entrypoint.sh /usr/local/bin/qpo-entrypoint
ARG QPO_VERSION=""
LABEL org.opencontainers.image.title="qpo" \
      org.opencontainers.image.description="qpo: query-dependent prompt optimization as PostgreSQL batch jobs (CPU processes)" \
      org.opencontainers.image.version="${QPO_VERSION}"
# Data files (qpo data fetch) and directory artifacts live in volumes mounted here.
ENV QPO_CACHE_DIR=/var/cache/qpo \
    QPO_CHECKPOINT_DIR=/var/lib/qpo/checkpoints \
    OMP_WAIT_POLICY=passive
USER qpo
WORKDIR /home/qpo
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["qpo-entrypoint", "health"]
ENTRYPOINT ["qpo-entrypoint"]
CMD ["help"]
