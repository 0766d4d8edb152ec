// prisma.config.ts, as `chatwithme prisma export --prisma 7` writes it. Prisma 7 takes the
// connection URL from here, not from schema.prisma, and no longer reads .env by itself
// (add `import "dotenv/config";` above if you keep DATABASE_URL in a .env file).
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  datasource: {
    // The same database as the ChatWithMe API. The API owns the migrations: run
    // `chatwithme db upgrade`, never `prisma migrate` or `prisma db push`, on it.
    // process.env rather than env(): env() throws when it is unset, and `prisma generate`
    // (at build time) needs no database.
    url: process.env.DATABASE_URL,
  },
});
