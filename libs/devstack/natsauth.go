package devstack

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"sync"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/sluice-ml/sluice/libs/events"
)

// NATS users of the embedded server (NATS's own authorization, not Sluice code): anonymous clients are
// refused; the services' user may publish and subscribe to everything (`sluice dev` hosts every service
// on one connection; the compose deployment gives each service its own user, events.ServicePermissions);
// the event gateway's user has events.GatewayPermissions: it may publish request types only and read
// streams, so an event that reaches the bus from outside can never be an internal type.
const (
	NATSServiceUser = "sluice-service"
	NATSGatewayUser = "sluice-gateway"
)

// natsPasswords are generated once per process: the embedded server and its clients share the process.
var natsPasswords = sync.OnceValue(func() [2]string {
	var p [2]string
	for i := range p {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		p[i] = hex.EncodeToString(b)
	}
	return p
})

func natsUsers() []*natsserver.User {
	pw := natsPasswords()
	// The server keeps bcrypt hashes only.
	hash := func(p string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			return p
		}
		return string(h)
	}
	gw := events.GatewayPermissions() // the same permissions as the compose deployment's gateway user
	return []*natsserver.User{
		{Username: NATSServiceUser, Password: hash(pw[0])},
		{Username: NATSGatewayUser, Password: hash(pw[1]), Permissions: &natsserver.Permissions{
			Publish:   &natsserver.SubjectPermission{Allow: gw.Publish},
			Subscribe: &natsserver.SubjectPermission{Allow: gw.Subscribe},
		}},
	}
}

// natsClientURLs returns the services' and the gateway's client URLs, credentials included.
func natsClientURLs(base string) (service, gateway string) {
	pw := natsPasswords()
	with := func(user, pass string) string {
		u, err := url.Parse(base)
		if err != nil {
			return base
		}
		u.User = url.UserPassword(user, pass)
		return u.String()
	}
	return with(NATSServiceUser, pw[0]), with(NATSGatewayUser, pw[1])
}
