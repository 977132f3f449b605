module github.com/sluice-ml/sluice/services/pipelines

go 1.26.8

require (
	github.com/google/cel-go v0.31.0
	google.golang.org/protobuf v1.36.12
	gopkg.in/yaml.v3 v3.0.1
)

require github.com/robfig/cron/v3 v3.0.1 // indirect
