# Step image for the seed pipeline: a shell, curl and coreutils on the Debian base made here
# (deploy/images/debian-base.sh). The pipelines image is built on it too, so that steps run with the
# local runtime inside the pipelines container have the same tools.
ARG BASE=sluice-local/debian:bookworm
FROM ${BASE}
CMD ["/bin/sh"]
