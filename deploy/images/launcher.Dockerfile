# The pipeline step launcher (services/pipelines/cmd/launcher), static, FROM scratch: the init container
# of every step pod on the kubernetes runtime runs `/launcher --copy /sluice-launcher/launch`.
FROM scratch
COPY bin/static/launcher /launcher
ENTRYPOINT ["/launcher"]
