// Command coredns is CoreDNS with only the plugins the test node uses: cluster.local answered
// from the API server, everything else NXDOMAIN. Nothing is ever forwarded off the machine.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

// The order in which plugins handle a query, a subset of CoreDNS's own plugin.cfg order.
func init() {
	dnsserver.Directives = []string{
		"bind", "ready", "health", "errors", "loadbalance", "cache", "template", "kubernetes",
	}
}

func main() { coremain.Run() }
