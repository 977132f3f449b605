# Temporal server v1.30.4 on PostgreSQL (target server; stand-in for temporalio/auto-setup) and the
# Temporal Web UI v2.45.1 (target ui; stand-in for temporalio/ui), from one static binary built from
# deploy/images/temporal by `make images`.
FROM scratch AS server
COPY bin/static/temporal-server /temporal-server
COPY deploy/etc/passwd /etc/passwd
USER 65532
EXPOSE 7233
ENTRYPOINT ["/temporal-server"]
CMD ["server"]
HEALTHCHECK --interval=5s --timeout=5s --retries=60 CMD ["/temporal-server", "healthcheck"]

FROM scratch AS ui
COPY bin/static/temporal-server /temporal-server
COPY deploy/etc/passwd /etc/passwd
USER 65532
EXPOSE 8080
ENTRYPOINT ["/temporal-server"]
CMD ["ui"]
HEALTHCHECK --interval=5s --timeout=5s --retries=60 CMD ["/temporal-server", "healthcheck", "ui"]
