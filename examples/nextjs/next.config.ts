import type { NextConfig } from "next";

// Same-origin deployment: the browser calls /api/chat, /api/conversations, ... on this app's
// origin and Next.js forwards them to the API. /api/auth/* is NOT forwarded: it belongs to
// Auth.js here. Rewrites are read when `next build` runs, so CHATWITHME_API_URL must be set
// then (unset: no rewrites, and the page calls the API cross-origin at CHATWITHME_PUBLIC_API_URL).
const api = process.env.CHATWITHME_API_URL?.replace(/\/$/, "");
const API_PATHS = ["chat", "conversations", "messages", "users", "models", "health"];

const config: NextConfig = {
  // Next.js's gzip holds a proxied text/event-stream back until it ends (the browser test
  // sees the whole answer arrive at once with `compress: true`): compress at the edge instead.
  compress: false,
  experimental: {
    // Proxied requests are cut after 30 s without a byte by default; a model may think longer
    // than that before its first word.
    proxyTimeout: 300_000,
  },
  async rewrites() {
    if (!api) return [];
    return API_PATHS.map((name) => ({
      source: `/api/${name}/:path*`,
      destination: `${api}/api/${name}/:path*`,
    }));
  },
};

export default config;
