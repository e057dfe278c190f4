# One image for every service; the command picks the service:
#   docker run IMAGE consumers/prime-filter/dist/main.js
#   docker run IMAGE producer/dist/cli.js range 2 100      (also: `pipeline ...`)
# Build here with:  docker build --pull=never -t amqp-pipeline .

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json tsconfig.json ./
COPY shared/package.json shared/
COPY producer/package.json producer/
COPY consumers/prime-filter/package.json consumers/prime-filter/
COPY consumers/square-mapper/package.json consumers/square-mapper/
COPY consumers/title-fetcher/package.json consumers/title-fetcher/
COPY devtools/package.json devtools/
COPY test/package.json test/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY shared shared
COPY producer producer
COPY consumers consumers
COPY devtools devtools
RUN npx tsc -b shared producer consumers/prime-filter consumers/square-mapper consumers/title-fetcher

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY producer/package.json producer/
COPY consumers/prime-filter/package.json consumers/prime-filter/
COPY consumers/square-mapper/package.json consumers/square-mapper/
COPY consumers/title-fetcher/package.json consumers/title-fetcher/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
      -w shared -w producer -w consumers/prime-filter -w consumers/square-mapper -w consumers/title-fetcher \
 && npm cache clean --force \
 && ln -s /app/producer/dist/cli.js /usr/local/bin/pipeline
COPY --from=build /app/shared/dist shared/dist
COPY --from=build /app/producer/dist producer/dist
COPY --from=build /app/consumers/prime-filter/dist consumers/prime-filter/dist
COPY --from=build /app/consumers/square-mapper/dist consumers/square-mapper/dist
COPY --from=build /app/consumers/title-fetcher/dist consumers/title-fetcher/dist
RUN chmod +x producer/dist/cli.js
# Health, readiness and metrics on this port (GET /healthz, /readyz, /metrics).
ENV HEALTH_PORT=8080 HEALTH_HOST=0.0.0.0
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.HEALTH_PORT+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Never root at run time.
USER node
# node is PID 1 and handles SIGTERM itself (each service closes cleanly on it).
ENTRYPOINT ["node"]
CMD ["consumers/prime-filter/dist/main.js"]
