package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// Status is a request failure with a canonical error code (the codes TF Serving's Status and gRPC
// share). REST answers it with StatusCode's mapping and {"error": Message}; gRPC with the code.
type Status struct {
	Code    codes.Code
	Message string
}

func (s *Status) Error() string { return s.Message }

// statusf returns a *Status error.
func statusf(code codes.Code, format string, a ...any) error {
	return &Status{Code: code, Message: fmt.Sprintf(format, a...)}
}

// CodeOf classifies err: a *Status keeps its code; invalid input is INVALID_ARGUMENT; an
// exhausted request budget RESOURCE_EXHAUSTED; a cancelled or expired request CANCELLED or
// DEADLINE_EXCEEDED; anything else (a fault of the server or the model) INTERNAL.
func CodeOf(err error) codes.Code {
	var st *Status
	switch {
	case err == nil:
		return codes.OK
	case errors.As(err, &st):
		return st.Code
	case errors.Is(err, modelruntime.ErrInvalidInput):
		return codes.InvalidArgument
	case errors.Is(err, ErrOverloaded):
		return codes.ResourceExhausted
	case errors.Is(err, modelrepo.ErrUnloaded):
		return codes.Unavailable
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

// HTTPStatus maps a canonical code to an HTTP status as TF Serving's REST server does
// (tensorflow_serving/model_servers/http_server.cc ToHTTPStatusCode).
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499 // client closed request
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

// writeErr writes err as {"error": msg} with its mapped status.
func writeErr(w http.ResponseWriter, err error) {
	writeError(w, HTTPStatus(CodeOf(err)), err.Error())
}
