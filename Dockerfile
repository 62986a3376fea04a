# drctl worker image: the TypeScript sources run through tsx (a runtime dependency, registered by
# bin/drctl.js), so there is no build step and `npm ci --omit=dev` is the whole install.
#
#   docker build -t drctl-worker:0.1.0 .
#   docker run --rm drctl-worker:0.1.0 --help
#
# docker-compose.yml builds this image for its `worker` service.
FROM node:24.22.3-bookworm-slim

# openssh-client for `ssh-keygen -lf`, which prints the SHA256 host-key fingerprints drctl.yaml pins
# (drctl itself speaks SSH through the ssh2 package, not through this client).
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production
WORKDIR /opt/drctl

# Dependencies first, so source edits do not invalidate this layer. --ignore-scripts matches the
# project's allowScripts policy (every install script off); the native pieces that matter (Temporal
# core-bridge, swc, esbuild) ship prebuilt. Known gap: ssh2's native crypto binding is not built in
# this image (scripts/setup.sh builds it for the lab and CI), so ssh2 makes an AES-GCM decipher per
# SSH packet here, which cost the encrypted snapshot upload 10-20 % on the lab (bench/README.md).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts \
 && npm cache clean --force

COPY tsconfig.json ./
COPY bin ./bin
COPY client ./client
COPY common ./common
COPY config ./config
COPY activities ./activities
COPY gateways ./gateways
COPY worker ./worker
COPY workflows ./workflows
COPY lab/versions.json ./lab/versions.json

# An unprivileged user; the sources stay root-owned and read-only to it. Compose may run the container
# under another uid (its `user:`) so that mounted 0600 SSH keys stay readable.
ARG DRCTL_UID=10001
RUN groupadd --system --gid "${DRCTL_UID}" drctl \
 && useradd --system --uid "${DRCTL_UID}" --gid drctl --home-dir /home/drctl --create-home --shell /usr/sbin/nologin drctl
USER drctl

ENTRYPOINT ["node", "bin/drctl.js"]
CMD ["worker"]
