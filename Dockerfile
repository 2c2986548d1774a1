# brokerd container image: `make image IMAGE=registry.example.com/brokerd:0.1` (docker build -t $(IMAGE) .).
# Kubernetes manifests that run it: deploy/ (docs/falco.md walks through the whole setup).

# ---- build ----------------------------------------------------------------------------------------------
# 6.3 is the toolchain the code is developed and tested with (Package.swift needs 6.1 or newer).
ARG SWIFT_VERSION=6.3
FROM swift:${SWIFT_VERSION}-bookworm AS build

# liblz4-dev: the CLZ4 system library (sealed stream blocks); libssl-dev as in .ci/run.
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends liblz4-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Resolve dependencies first so this layer is cached while only the sources change.
# (Package.* also picks up Package.resolved when the checkout has one.)
COPY Package.* ./
RUN swift package resolve

# Every target Package.swift declares must exist for the package to load (tests and the load tool included);
# .dockerignore keeps the build caches, .git, the Python suite and the deployment files out of the context.
COPY Sources ./Sources
COPY Tests ./Tests
COPY Benchmarks ./Benchmarks
# The Makefile's RELEASE_FLAGS (test_deploy.py checks they match): static runtime, the start-up's functions
# first (Sources/brokerd/brokerd.order), packed relocations, and libstdc++, libgcc, liblz4 and zlib linked
# statically from .build/static-libs (the Makefile's `static-libs`); see the Makefile. The binary then needs
# glibc and libcrypt (LGPL: kept shared) alone, which the check after the build makes sure of.
RUN mkdir -p .build/static-libs \
    && for lib in stdc++ lz4 z; do \
         a=$(clang -print-file-name=lib$lib.a); \
         if [ ! -f "$a" ]; then echo "lib$lib.a not found (static-libs)" >&2; exit 1; fi; \
         ln -sf "$a" .build/static-libs/lib$lib.a; \
       done \
    && swift build -c release --product brokerd --static-swift-stdlib -Xswiftc -Xfrontend -Xswiftc -function-sections \
        -Xcc -ffunction-sections -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs \
        -Xlinker --no-export-dynamic -Xlinker --symbol-ordering-file=/src/Sources/brokerd/brokerd.order \
        -Xlinker --no-warn-symbol-ordering -Xlinker -L/src/.build/static-libs -Xswiftc -Xclang-linker -Xswiftc -static-libgcc \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/brokerd" /out/usr/local/bin/brokerd \
    && libs="$(ldd /out/usr/local/bin/brokerd)" && echo "$libs" && [ -n "$libs" ] \
    && ! echo "$libs" | grep -vE 'linux-vdso|libc\.so|libm\.so|libcrypt\.so|ld-linux'

# ---- runtime --------------------------------------------------------------------------------------------
FROM debian:bookworm-slim

# The Swift runtime and every library but glibc and libcrypt are linked in statically (the build stage checks it).
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends libcrypt1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 brokerd \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin brokerd \
    && install -d -o 10001 -g 10001 -m 0750 /data \
    && install -d -m 0755 /etc/brokerd

COPY --from=build /out/usr/local/bin/brokerd /usr/local/bin/brokerd

# A default configuration for `docker run`; in Kubernetes the ConfigMap in deploy/ is mounted over /etc/brokerd.
RUN printf '%s\n' \
      'port: 4222' \
      'http_port: 8222' \
      'jetstream { store_dir: "/data" }' \
      'falco { http_port: 2801, map_sidekick_subjects: true }' \
      > /etc/brokerd/brokerd.conf

USER 10001:10001
WORKDIR /data
VOLUME /data

# 4222 NATS clients, 8222 monitoring (/healthz /varz /jsz /metrics), 2801 Falco http_output.
EXPOSE 4222 8222 2801

ENTRYPOINT ["/usr/local/bin/brokerd"]
CMD ["-c", "/etc/brokerd/brokerd.conf"]
