// Package integration runs Sluice as separate containers (one per service, from the images `make images`
// builds) against real NATS, Temporal on PostgreSQL, S3 and PostgreSQL on one Docker network, and checks
// that they cooperate under faults. The tests are in *_test.go; this file only names the package.
package integration
