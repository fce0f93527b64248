// faultproxy: an HTTP reverse proxy that injects faults in front of a registry, for bkcache's fault
// tests (harness/tests/e2e_faults.rs runs it through testcontainers). Standard library only.
//
//	LISTEN    address to serve, e.g. 127.0.0.1:5101
//	UPSTREAM  the registry, e.g. http://127.0.0.1:5100
//	FAULT     none | 500 (answer 500 Internal Server Error) | slow (wait DELAY_MS before each answer)
//	AFTER     serve this many requests faithfully before the fault starts (default 0)
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

func main() {
	upstream, err := url.Parse(os.Getenv("UPSTREAM"))
	if err != nil || upstream.Host == "" {
		log.Fatalf("UPSTREAM must be a URL such as http://127.0.0.1:5100 (got %q)", os.Getenv("UPSTREAM"))
	}
	fault := os.Getenv("FAULT")
	after, _ := strconv.ParseInt(os.Getenv("AFTER"), 10, 64)
	delay, _ := strconv.Atoi(os.Getenv("DELAY_MS"))
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	var served atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) > after {
			switch fault {
			case "500":
				http.Error(w, "faultproxy: injected fault", http.StatusInternalServerError)
				return
			case "slow":
				time.Sleep(time.Duration(delay) * time.Millisecond)
			}
		}
		proxy.ServeHTTP(w, r)
	})
	listen := os.Getenv("LISTEN")
	log.Printf("faultproxy listening on %s, upstream %s, fault %q after %d requests", listen, upstream, fault, after)
	log.Fatal(http.ListenAndServe(listen, handler))
}
