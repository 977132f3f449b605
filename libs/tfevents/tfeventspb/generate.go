// Package tfeventspb holds the generated Go types of tfevents.proto: TensorFlow's Event, Summary and
// TensorProto messages, wire-compatible with the event files TensorFlow, TensorBoard, tensorboardX and
// PyTorch write.
//
// Generated with protoc (Debian's protobuf-compiler) and protoc-gen-go v1.36.12 (`go install
// google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12`); the generated file is committed, so building
// needs neither.
package tfeventspb

//go:generate protoc --go_out=. --go_opt=paths=source_relative tfevents.proto
