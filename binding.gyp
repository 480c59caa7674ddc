{
  "targets": [
    {
      "target_name": "raftline_native",
      "sources": [
        "native/binding.cc",
        "native/crc32c.cc",
        "native/record.cc",
        "native/segment.cc",
        "native/segment_log.cc",
        "native/log_state.cc",
        "native/writer.cc",
        "native/meta_store.cc",
        "native/fs_util.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
