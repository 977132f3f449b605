package kube

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// Dynamic is the runtime's dynamic client (nil when Config.Dynamic was not set).
func (r *Runtime) Dynamic() dynamic.Interface { return r.cfg.Dynamic }

// Record writes a core/v1 Event about obj as client-go's record.EventRecorder does (type Normal or Warning,
// reason, message, source component, count 1), in obj's namespace; like the recorder it ignores failures.
func (r *Runtime) Record(ctx context.Context, obj corev1.ObjectReference, typ, reason, msg, component string) {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: obj.Name + ".", Namespace: obj.Namespace},
		InvolvedObject: obj, Reason: reason, Message: msg, Type: typ,
		Source: corev1.EventSource{Component: component}, FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: component,
	}
	_, _ = r.cfg.Client.CoreV1().Events(obj.Namespace).Create(ctx, ev, metav1.CreateOptions{})
}
