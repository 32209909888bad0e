# syntax=docker/dockerfile:1
# The same steps .ci/run checks on every run: npm ci, npm run build, npm run serve.

# --- build: all dependencies, type-check, bundle the server into dist/ (tools/build.mjs) ---
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --engine-strict
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
COPY tools/build.mjs ./tools/build.mjs
RUN npm run build

# --- runtime: production dependencies and dist/ only, as a non-root user ---
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --engine-strict --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
EXPOSE 3000
# Ready = the database answers and migrations are applied (node's fetch: no curl in the slim image).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node is PID 1 and receives SIGTERM itself (exec form, no npm or shell in between): graceful shutdown.
STOPSIGNAL SIGTERM
CMD ["node", "--enable-source-maps", "dist/src/main.js"]
