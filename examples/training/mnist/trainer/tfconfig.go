package trainer

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// TFConfig is the TF_CONFIG document set by the training service (and by
// training-operator): the cluster by lower-case replica type, and this
// replica's task.
type TFConfig struct {
	Cluster map[string][]string `json:"cluster"`
	Task    struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	} `json:"task"`
	Environment string `json:"environment"`
}

// ParseTFConfig decodes TF_CONFIG; an empty value means a single-process
// job (training-operator sets no TF_CONFIG on single-replica jobs).
func ParseTFConfig(s string) (*TFConfig, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var c TFConfig
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return nil, fmt.Errorf("trainer: TF_CONFIG: %w", err)
	}
	if c.Task.Type == "" {
		return nil, fmt.Errorf("trainer: TF_CONFIG: task.type is empty")
	}
	if addrs := c.Cluster[c.Task.Type]; c.Task.Index < 0 || c.Task.Index >= len(addrs) {
		return nil, fmt.Errorf("trainer: TF_CONFIG: task %s:%d is not in the cluster", c.Task.Type, c.Task.Index)
	}
	return &c, nil
}

// Self returns this task's address from the cluster.
func (c *TFConfig) Self() string { return c.Cluster[c.Task.Type][c.Task.Index] }

// coordinatorType is "chief" or "master" when the cluster has one, else "".
func (c *TFConfig) coordinatorType() string {
	for _, t := range []string{"chief", "master"} {
		if len(c.Cluster[t]) > 0 {
			return t
		}
	}
	return ""
}

// listenAddr turns a cluster address into the address to listen on: a
// loopback host (a local run, where every replica has its own port) is
// kept; any other host (a Kubernetes Service name) listens on all
// interfaces.
func listenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("trainer: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		return net.JoinHostPort(host, port), nil
	}
	return ":" + port, nil
}
