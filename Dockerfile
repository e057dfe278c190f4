# One image for every service; the command picks the service:
#   docker run IMAGE                                              prime-filter (the default command)
#   docker run IMAGE node consumers/square-mapper/dist/main.js
#   docker run IMAGE node consumers/title-fetcher/dist/main.js
#   docker run --rm --init IMAGE pipeline range 2 100             the producer CLI (--init: it sets
#                                                                 no signal handlers, so Ctrl-C
#                                                                 needs an init as PID 1)
# Build:  docker build -t amqp-pipeline:local .      (or `docker compose build`). With podman's own
#         CLI: podman build --format docker --pull=never -t amqp-pipeline:local .  (the OCI format,
#         podman's default, drops HEALTHCHECK; --pull=never where the base image is only local)
#
# Stages: `build` installs the dev dependencies and compiles; `deps` installs the production
# dependencies of the shipped workspaces only; `runtime` gets those and the compiled code, nothing
# else (no TypeScript, no test tools, no npm cache), and runs as the unprivileged `node` user.

# The workspaces that ship: shared (the broker mechanics), producer (the CLI) and the three
# services; devtools/, test/ and bench/ are development-only and stay out (see .dockerignore,
# which lets in only what the build needs: a new workspace goes there and in the lists below).

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json ./
COPY shared/package.json shared/
COPY producer/package.json producer/
COPY consumers/prime-filter/package.json consumers/prime-filter/
COPY consumers/square-mapper/package.json consumers/square-mapper/
COPY consumers/title-fetcher/package.json consumers/title-fetcher/
# Root dev dependencies (typescript, @types) plus the shipped workspaces' dependencies.
RUN npm ci --ignore-scripts --include-workspace-root \
      -w shared -w producer -w consumers/prime-filter -w consumers/square-mapper -w consumers/title-fetcher
COPY shared/ shared/
COPY producer/ producer/
COPY consumers/ consumers/
RUN npx tsc -b shared producer consumers/prime-filter consumers/square-mapper consumers/title-fetcher \
 && npm run bundle -w producer \
 && chmod 0755 producer/dist/bundle/cli.js consumers/*/dist/main.js
# prime-filter's WebAssembly sieve (assembly/ -> build/sieve.wasm, which dist/ loads; without it the
# service falls back to its slower JS kernel), when the workspace has one.
RUN mkdir -p consumers/prime-filter/build \
 && if [ -f consumers/prime-filter/asconfig.json ]; then \
      npm run build:wasm -w consumers/prime-filter && rm -f consumers/prime-filter/build/*.wat; \
    fi

FROM ${NODE_IMAGE} AS deps
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY producer/package.json producer/
COPY consumers/prime-filter/package.json consumers/prime-filter/
COPY consumers/square-mapper/package.json consumers/square-mapper/
COPY consumers/title-fetcher/package.json consumers/title-fetcher/
# Production dependencies only, exactly as locked; workspace packages become symlinks.
RUN npm ci --omit=dev --ignore-scripts \
      -w shared -w producer -w consumers/prime-filter -w consumers/square-mapper -w consumers/title-fetcher

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# The manifests matter at run time: "type": "module" and the workspace packages' "exports".
COPY --from=deps /app/package.json ./
COPY --from=deps /app/node_modules node_modules/
COPY --from=deps /app/shared/package.json shared/
COPY --from=deps /app/producer/package.json producer/
COPY --from=deps /app/consumers/prime-filter/package.json consumers/prime-filter/
COPY --from=deps /app/consumers/square-mapper/package.json consumers/square-mapper/
COPY --from=deps /app/consumers/title-fetcher/package.json consumers/title-fetcher/
COPY --from=build /app/shared/dist shared/dist/
COPY --from=build /app/producer/dist producer/dist/
COPY --from=build /app/consumers/prime-filter/dist consumers/prime-filter/dist/
COPY --from=build /app/consumers/prime-filter/build consumers/prime-filter/build/
COPY --from=build /app/consumers/square-mapper/dist consumers/square-mapper/dist/
COPY --from=build /app/consumers/title-fetcher/dist consumers/title-fetcher/dist/
RUN ln -s /app/producer/dist/bundle/cli.js /usr/local/bin/pipeline && pipeline --version
# Each service serves GET /healthz, /readyz and /metrics on this port.
ENV HEALTH_PORT=8080 HEALTH_HOST=0.0.0.0
EXPOSE 8080
# Healthy = connected to the broker and consuming (/readyz answers 200).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.HEALTH_PORT+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Never root at run time (the code and node_modules stay root-owned, read-only to it).
USER node
# No shell and no init in between: the command runs as PID 1 (exec form). `node` handles SIGTERM
# itself: a service stops consuming, finishes in-flight jobs (SHUTDOWN_GRACE_MS), closes, exits 0.
# The base image's docker-entrypoint.sh is dropped so the command is run exactly as given.
STOPSIGNAL SIGTERM
ENTRYPOINT []
CMD ["node", "consumers/prime-filter/dist/main.js"]
