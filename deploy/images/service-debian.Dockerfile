# A Sluice service on the step image (shell + curl), for services that run work as local processes
# (pipelines' steps with SLUICE_RUNTIME=local). Build arg SERVICE names the binary in bin/static.
ARG STEP_IMAGE=sluice-local/step:dev
FROM ${STEP_IMAGE}
ARG SERVICE
COPY bin/static/${SERVICE} /sluice-service
RUN mkdir -p /data && chown 65532:65532 /data
USER 65532:65532
EXPOSE 8080
ENV SLUICE_HTTP_ADDR=0.0.0.0:8080 SLUICE_DATA_DIR=/data
ENTRYPOINT ["/sluice-service"]
HEALTHCHECK --interval=5s --timeout=5s --retries=60 CMD ["/sluice-service", "healthcheck"]
