module github.com/sluice-ml/sluice/services/notebooks

go 1.26.8

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	go.temporal.io/api v1.62.2 // indirect
	go.temporal.io/sdk v1.40.0 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	sigs.k8s.io/yaml v1.6.0 // indirect
)
