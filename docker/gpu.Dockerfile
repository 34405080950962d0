# syntax=docker/dockerfile:1
# qpo for the GPU trainers (train, generate, evaluate-generate jobs) with the CUDA backend, on
# NVIDIA's CUDA images (Ubuntu 22.04; the package names of scripts/install-deps.sh hold there).
# Build context: the repository root (docker/compose.yaml). QPO_CUDA_ARCHS: the GPUs to
# compile for (80: A100, 86: A10/RTX 30, 89: L4/RTX 40, 90: H100/H200).

FROM nvidia/cuda:12.4.1-devel-ubuntu22.04 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
ARG QPO_CUDA_ARCHS="80;90"
# Warnings are not errors here: CI holds the code to -Werror with Debian 12's GCC 12, and Ubuntu
# 22.04's GCC 11 must not refuse an image over a warning CI never saw.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQPO_CUDA=ON -DQPO_WERROR=OFF \
          -DCMAKE_CUDA_ARCHITECTURES="${QPO_CUDA_ARCHS}" \
    && cmake --build build -j"$(nproc)" --target qpo
ARG QPO_VERSION=""
RUN docker/check-version.sh build/qpo "$QPO_VERSION"

# The runtime image carries the CUDA runtime, cuBLAS and cuBLASLt the backend links.
FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/qpo qpo \
    && mkdir -p /var/cache/qpo /var/lib/qpo && chown qpo:qpo /var/cache/qpo /var/lib/qpo
COPY --from=build /src/build/qpo /usr/local/bin/qpo
COPY docker/entrypoint.sh /usr/local/bin/qpo-entrypoint
ARG QPO_VERSION=""
LABEL org.opencontainers.image.title="qpo-gpu" \
      org.opencontainers.image.description="qpo: GPU trainer workers (CUDA backend)" \
      org.opencontainers.image.version="${QPO_VERSION}"
ENV QPO_CACHE_DIR=/var/cache/qpo \
    QPO_CHECKPOINT_DIR=/var/lib/qpo/checkpoints \
    OMP_WAIT_POLICY=passive
USER qpo
WORKDIR /home/qpo
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["qpo-entrypoint", "health"]
ENTRYPOINT ["qpo-entrypoint"]
CMD ["worker", "--class", "gpu", "--backend", "cuda"]
