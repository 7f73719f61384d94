{
  # Two targets: the pure C++ core (no Node headers) as a static library, and the
  # node-addon-api binding on top of it. Sources are globbed (native/core recursively, one
  # folder per layer) so that adding a file per concept needs no edit here. Core headers are
  # included by their path under native/core ("net/net_graph.h").
  "includes": ["native/common.gypi"],
  "targets": [
    {
      "target_name": "netplane_core",
      "type": "static_library",
      "sources": ["<!@(node -p \"(function w(d){return require('fs').readdirSync(d,{withFileTypes:true}).flatMap(e=>e.isDirectory()?w(d+'/'+e.name):e.name.endsWith('.cc')?[d+'/'+e.name]:[])})('native/core').join(' ')\")"],
      "include_dirs": ["native/core"],
      "direct_dependent_settings": { "include_dirs": ["native/core"] },
      # dlopen: libslirp is opened at run time (native/core/slirp/libslirp_loader.cc).
      "link_settings": { "libraries": ["-ldl"] }
    },
    {
      "target_name": "netplane",
      "dependencies": ["netplane_core", "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "sources": ["<!@(node -p \"require('fs').readdirSync('native/binding').filter(f=>f.endsWith('.cc')).map(f=>'native/binding/'+f).join(' ')\")"],
      # SWALLOW_UNTHROWABLE: an error thrown while a worker is terminating (its JS can no
      # longer run) is dropped instead of aborting the whole process (test/lifecycle.test.ts).
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"]
    }
  ]
}
