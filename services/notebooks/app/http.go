package app

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/access"
	"github.com/sluice-ml/sluice/services/notebooks/internal/nbspec"
)

const apiPrefix = "/apis/notebooks/v1/namespaces/{ns}/notebooks"

// MaxBodyBytes bounds a notebook document (1 MiB); a longer one is answered 413.
const MaxBodyBytes = 1 << 20

// Routes registers REST under /apis/notebooks/v1 and the proxy under /notebook/. Both need a Sluice token
// granted the namespace: "Authorization: Bearer <token>", "?token=<token>" or the sluice-notebook-token cookie.
//
//	POST   /apis/notebooks/v1/namespaces/{ns}/notebooks               create (Kubeflow Notebook or local form, JSON or YAML) → 201
//	GET    /apis/notebooks/v1/namespaces/{ns}/notebooks               list → NotebookList
//	GET    /apis/notebooks/v1/namespaces/{ns}/notebooks/{name}        get → Notebook
//	DELETE /apis/notebooks/v1/namespaces/{ns}/notebooks/{name}        delete → 202
//	POST   /apis/notebooks/v1/namespaces/{ns}/notebooks/{name}:stop   stop → 202
//	POST   /apis/notebooks/v1/namespaces/{ns}/notebooks/{name}:start  start → 202
//	ANY    /notebook/{ns}/{name}/...                                  the notebook server (HTTP and WebSocket)
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+apiPrefix, s.authorized(s.handleCreate))
	mux.HandleFunc("GET "+apiPrefix, s.authorized(s.handleList))
	mux.HandleFunc("GET "+apiPrefix+"/{name}", s.authorized(s.handleGet))
	mux.HandleFunc("DELETE "+apiPrefix+"/{name}", s.authorized(s.handleDelete))
	mux.HandleFunc("POST "+apiPrefix+"/{name}", s.authorized(s.handleAction))
	mux.HandleFunc("/notebook/{ns}/{name}/{rest...}", s.authorized(s.handleProxy))
	s.tensorboardRoutes(mux)
	mux.HandleFunc("/notebook/{ns}/{name}", s.authorized(func(w http.ResponseWriter, r *http.Request) {
		u := *r.URL
		u.Path += "/"
		http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
	}))
}

// authorized checks the caller's token against the {ns} of the path: 401 without a known token, 403 when
// the token is not granted the namespace.
//
// Behind the platform gateway (every process that listens: `sluice dev` and the service binary) the
// gateway has authorised the route already, with the same rule, and this check steps aside.
func (s *Service) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := auth.FromContext(r.Context()); ok {
			h(w, r)
			return
		}
		tok, _ := access.Presented(r)
		switch s.tokens.Check(tok, r.PathValue("ns")) {
		case http.StatusOK:
			h(w, r)
		case http.StatusForbidden:
			platform.WriteError(w, http.StatusForbidden, fmt.Errorf("token is not allowed namespace %q", r.PathValue("ns")))
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			platform.WriteError(w, http.StatusUnauthorized, errors.New("a Sluice API token is required (Authorization: Bearer <token>)"))
		}
	}
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	body, err := platform.ReadBody(w, r, MaxBodyBytes)
	if err != nil {
		platform.WriteDecodeError(w, "create notebook", err)
		return
	}
	nb, err := parseDocument(body, ns)
	if err != nil {
		platform.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if nb.Metadata.Namespace != ns {
		platform.WriteError(w, http.StatusBadRequest, fmt.Errorf("metadata.namespace: %q does not match the namespace %q of the URL", nb.Metadata.Namespace, ns))
		return
	}
	if err := s.Create(r.Context(), nb, "rest-"+uuid.NewString(), time.Now()); err != nil {
		s.writeErr(w, err)
		return
	}
	nb.Status = notebooksv1.NotebookStatus{Conditions: []notebooksv1.Condition{{Type: notebooksv1.ConditionWaiting, Status: "True", Reason: notebooksv1.ReasonStarting}}}
	if got, err := s.Get(r.Context(), nb.Metadata.Namespace, nb.Metadata.Name); err == nil {
		nb = got
	}
	platform.WriteJSON(w, http.StatusCreated, nb)
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	items, err := s.List(r.Context(), r.PathValue("ns"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if items == nil {
		items = []notebooksv1.Notebook{}
	}
	platform.WriteJSON(w, http.StatusOK, notebooksv1.NotebookList{APIVersion: notebooksv1.APIVersion, Kind: "NotebookList", Items: items})
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	nb, err := s.Get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, nb)
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	s.control(w, r, r.PathValue("name"), notebooksv1.ActionDelete)
}

func (s *Service) handleAction(w http.ResponseWriter, r *http.Request) {
	name, action, ok := strings.Cut(r.PathValue("name"), ":")
	if !ok || (action != notebooksv1.ActionStop && action != notebooksv1.ActionStart) {
		platform.WriteError(w, http.StatusNotFound, errors.New("want POST .../notebooks/{name}:stop or :start"))
		return
	}
	s.control(w, r, name, action)
}

func (s *Service) control(w http.ResponseWriter, r *http.Request, name, action string) {
	ns := r.PathValue("ns")
	if err := s.Control(r.Context(), ns, name, notebooksv1.Control{Action: action}); err != nil {
		s.writeErr(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusAccepted, map[string]string{"namespace": ns, "name": name, "action": action})
}

func (s *Service) writeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		platform.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, ErrAlreadyExists):
		platform.WriteError(w, http.StatusConflict, err)
	case errors.Is(err, nbspec.ErrInvalid):
		platform.WriteError(w, http.StatusBadRequest, err)
	default:
		s.log.Error("notebooks request failed", "err", err)
		platform.WriteError(w, http.StatusInternalServerError, err)
	}
}

// proxyTransport is shared by every proxied request (loopback only).
var proxyTransport = &http.Transport{
	MaxIdleConnsPerHost: 16,
	IdleConnTimeout:     90 * time.Second,
}

// handleProxy forwards an authorised request to the notebook's server, replacing the caller's Sluice
// token with the server's Jupyter token. A browser that came with ?token= gets the token as a cookie
// scoped to the notebook's path, so the pages and kernel WebSockets it opens next are authorised too.
//
// Sluice credentials never reach Jupyter: the Authorization header is replaced, the "token" query parameter
// and the Sluice cookie are removed, whichever of them authenticated the request.
func (s *Service) handleProxy(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if auth.ValidNamespace(ns) != nil || auth.ValidNamespace(name) != nil {
		// Not a name a notebook can have (e.g. "..%2fteam-b%2fnbb"): the same answer as a missing one.
		platform.WriteError(w, http.StatusNotFound, fmt.Errorf("notebook %s/%s not found", ns, name))
		return
	}
	ep, ok := s.lookup(r.Context(), ns, name)
	if !ok {
		if _, err := s.store.Get(ns, name); err != nil {
			platform.WriteError(w, http.StatusNotFound, fmt.Errorf("notebook %s/%s not found", ns, name))
			return
		}
		w.Header().Set("Retry-After", "2")
		platform.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("notebook %s/%s is not running (start it with POST %s/%s:start)", ns, name, strings.Replace(apiPrefix, "{ns}", ns, 1), name))
		return
	}
	tok, from := access.Presented(r)
	if qt := r.URL.Query().Get("token"); qt != "" && r.Header.Get("Authorization") == "" {
		tok, from = qt, "query"
	}
	if from == "query" {
		http.SetCookie(w, &http.Cookie{Name: access.CookieName, Value: tok, Path: notebooksv1.PathPrefix(ns, name),
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	}
	// A local server on loopback, or on Kubernetes the notebook's Service (<name>.<namespace>.svc.<domain>:80).
	target := &url.URL{Scheme: "http", Host: ep.Addr()}
	transport := http.RoundTripper(proxyTransport)
	if s.cluster != nil {
		transport = s.cluster.Transport()
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			// Jupyter checks a WebSocket's Origin against Host: keep the browser's Host.
			pr.Out.Host = pr.In.Host
			if ep.Token != "" {
				pr.Out.Header.Set("Authorization", "token "+ep.Token)
			} else {
				// Kubeflow's notebook images run without a Jupyter token: the Service is reached only
				// through this authenticating proxy (and the cluster's network policies).
				pr.Out.Header.Del("Authorization")
			}
			if q := pr.Out.URL.Query(); q.Has("token") {
				q.Del("token")
				pr.Out.URL.RawQuery = q.Encode()
			}
			pr.Out.Header.Del(auth.IdentityHeader)
			stripCookie(pr.Out)
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Set("X-Content-Type-Options", "nosniff")
			return nil
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			platform.WriteError(w, http.StatusBadGateway, fmt.Errorf("notebook %s/%s: %w", ns, name, err))
		},
	}
	rp.ServeHTTP(w, r)
}

// stripCookie removes the Sluice token cookie before the request reaches Jupyter.
func stripCookie(r *http.Request) {
	cs := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cs {
		if c.Name != access.CookieName {
			r.AddCookie(c)
		}
	}
}

// parseDocument parses a notebook document; the error is an *nbspec.InvalidError.
func parseDocument(doc []byte, defaultNamespace string) (notebooksv1.Notebook, error) {
	nb, err := nbspec.Parse(doc, defaultNamespace)
	if err != nil {
		return nb, err
	}
	if v := nb.Metadata.Annotations[notebooksv1.AnnotationStopped]; v != "" {
		if _, terr := time.Parse(time.RFC3339, v); terr != nil && v != "true" {
			return nb, &nbspec.InvalidError{Fields: []nbspec.FieldError{{Path: "metadata.annotations." + notebooksv1.AnnotationStopped, Message: fmt.Sprintf("%q is not an RFC 3339 time", v)}}}
		}
	}
	return nb, nil
}
