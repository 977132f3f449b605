# S3 server: versitygw (github.com/versity/versitygw, static) with its posix backend on /data — the
# local stand-in for minio/minio. Credentials: ROOT_ACCESS_KEY / ROOT_SECRET_KEY (versitygw's own
# variables); deploy/compose/local.yml maps MinIO's MINIO_ROOT_USER / MINIO_ROOT_PASSWORD onto them.
FROM scratch
COPY bin/static/versitygw /versitygw
COPY --chown=65532:65532 deploy/etc/data/ /data/
COPY deploy/etc/passwd /etc/passwd
USER 65532
EXPOSE 9000
ENTRYPOINT ["/versitygw"]
CMD ["--port", ":9000", "--health", "/healthz", "posix", "/data"]
