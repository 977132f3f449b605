// Package clusterspec computes the environment each replica of a training
// job receives, exactly as training-operator v1 sets it: TF_CONFIG for
// TFJob replicas, MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK and the PET_*
// torchrun variables for PyTorchJob replicas.
//
// Where replicas reach each other is pluggable (Network). On Kubernetes a
// replica is its headless Service, "<job>-<type>-<i>.<ns>.svc:<port>". When
// replicas run as local processes every host resolves to loopback, so
// Loopback hands each replica its own free port and every address in the
// environment is "127.0.0.1:<port>": the TF_CONFIG cluster lists
// 127.0.0.1 with per-replica ports, and MASTER_ADDR is 127.0.0.1. A trainer
// therefore listens on the address TF_CONFIG gives its own task.
package clusterspec

import (
	"fmt"
	"strconv"

	"github.com/sluice-ml/sluice/libs/netport"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// Replica identifies one process of a job.
type Replica struct {
	Type  trainingv1.ReplicaType `json:"type"`
	Index int32                  `json:"index"`
}

// Name returns the replica's pod/service name, "<job>-<lower(type)>-<index>".
func (r Replica) Name(jobName string) string {
	return trainingv1.ReplicaName(jobName, r.Type, r.Index)
}

func (r Replica) String() string {
	return string(r.Type) + "-" + strconv.FormatInt(int64(r.Index), 10)
}

// Replicas lists every replica of job: replica types in canonical order
// (Chief, Master, PS, Worker, Evaluator), indexes ascending. Types with zero
// replicas contribute none.
func Replicas(job *trainingv1.Job) []Replica {
	var out []Replica
	for _, t := range job.ReplicaTypes() {
		for i := int32(0); i < job.Replicas(t); i++ {
			out = append(out, Replica{Type: t, Index: i})
		}
	}
	return out
}

// Network says where a replica can be reached.
type Network interface {
	// Endpoint returns the host other replicas dial to reach r and the
	// port r listens on. fqdn selects the cluster-qualified name (used in
	// TF_CONFIG) over the short service name (used for PyTorch's
	// MASTER_ADDR and rendezvous endpoint).
	Endpoint(job *trainingv1.Job, r Replica, fqdn bool) (host string, port int32, err error)
}

// Kubernetes addresses replicas by their headless Service, per
// training-operator: "<name>.<namespace>.svc" plus ".<ClusterDomain>" when
// set (the operator's CUSTOM_CLUSTER_DOMAIN), on the default container's
// named port (tfjob-port / pytorchjob-port, else 2222 / 23456).
type Kubernetes struct {
	ClusterDomain string
}

// Endpoint implements Network.
func (k Kubernetes) Endpoint(job *trainingv1.Job, r Replica, fqdn bool) (string, int32, error) {
	return k.endpoint(job, r, fqdn, job.Meta().Namespace)
}

func (k Kubernetes) endpoint(job *trainingv1.Job, r Replica, fqdn bool, namespace string) (string, int32, error) {
	host := r.Name(job.Meta().Name)
	if fqdn {
		host += "." + namespace + ".svc"
		if k.ClusterDomain != "" {
			host += "." + k.ClusterDomain
		}
	}
	return host, job.Port(r.Type), nil
}

// LoopbackHost is the host of every replica run as a local process.
const LoopbackHost = "127.0.0.1"

// Loopback addresses replicas run as local processes: every host is
// 127.0.0.1 and each replica has its own port, keyed by replica name
// ("<job>-<type>-<i>"). It is plain data so it can travel in workflow
// inputs.
//
// With Mode ModeDNS it addresses replicas run as containers on one network
// of their own instead (Docker): every replica is reached by its
// training-operator service name "<job>-<type>-<i>" (the container's alias)
// on the default container's declared port (tfjob-port / pytorchjob-port,
// else 2222 / 23456), and Ports is unused.
type Loopback struct {
	Ports map[string]int32 `json:"ports"`
	Mode  string           `json:"mode,omitempty"`
	// Namespace is the Kubernetes namespace of the replicas' Services
	// under ModeKubernetes (default: the job's namespace).
	Namespace string `json:"namespace,omitempty"`
}

// ModeKubernetes is Loopback.Mode for replicas run as pods: addresses are
// those of Kubernetes (headless Services) in Loopback.Namespace.
const ModeKubernetes = "kubernetes"

// ModeDNS is Loopback.Mode for replicas that resolve each other by service
// name on a network of the job's own.
const ModeDNS = "dns"

// Endpoint implements Network. It fails when r has no port.
func (l Loopback) Endpoint(job *trainingv1.Job, r Replica, fqdn bool) (string, int32, error) {
	if l.Mode == ModeDNS {
		return r.Name(job.Meta().Name), job.Port(r.Type), nil
	}
	if l.Mode == ModeKubernetes {
		if l.Namespace != "" && l.Namespace != job.Meta().Namespace {
			return Kubernetes{}.endpoint(job, r, fqdn, l.Namespace)
		}
		return Kubernetes{}.Endpoint(job, r, fqdn)
	}
	name := r.Name(job.Meta().Name)
	port, ok := l.Ports[name]
	if !ok {
		return "", 0, fmt.Errorf("clusterspec: no loopback port for replica %s", name)
	}
	return LoopbackHost, port, nil
}

// AllocateLoopback picks a distinct free loopback TCP port for every replica of job. The replicas bind
// them later, so they are picked below the kernel's ephemeral range (netport.Free), where no outgoing
// connection or ":0" listener can take one in between; another program binding one explicitly still
// could, and then the replica fails to bind and restarts under its restart policy.
func AllocateLoopback(job *trainingv1.Job) (Loopback, error) {
	replicas := Replicas(job)
	ports, err := netport.FreeN(LoopbackHost, len(replicas))
	if err != nil {
		return Loopback{}, fmt.Errorf("clusterspec: allocate replica ports: %w", err)
	}
	lb := Loopback{Ports: make(map[string]int32, len(replicas))}
	for i, r := range replicas {
		lb.Ports[r.Name(job.Meta().Name)] = int32(ports[i])
	}
	return lb, nil
}
