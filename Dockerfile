# spool in a container: a static binary on an empty image, run as a
# non-root user, data in the volume /var/lib/spool.
#
#   docker build -t spool .
#   docker run -d --name spool -p 7070:7070 -v spool-data:/var/lib/spool \
#     -e SPOOL_TOKEN="$(openssl rand -hex 32)" spool
#
# The server listens on all interfaces of the container, so it wants a
# token (SPOOL_TOKEN, or --token-file /run/secrets/... with a Docker
# secret) and refuses to start without one; --allow-anonymous opts out.
# The health check is spool's own `spool health` (GET /healthz, which
# needs no token).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# -buildvcs=true: the version `spool version` prints comes from .git.
RUN CGO_ENABLED=0 go build -buildvcs=true -trimpath -ldflags='-s -w' -o /out/spool . \
	&& mkdir -p /out/data

FROM scratch
COPY --from=build /out/spool /usr/local/bin/spool
COPY --from=build --chown=65532:65532 /out/data /var/lib/spool
USER 65532:65532
ENV SPOOL_LISTEN=0.0.0.0:7070 SPOOL_DATA=/var/lib/spool
VOLUME /var/lib/spool
EXPOSE 7070
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s CMD ["/usr/local/bin/spool", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/spool"]
CMD ["serve"]
