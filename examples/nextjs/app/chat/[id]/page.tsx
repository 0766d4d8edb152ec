import { redirect } from "next/navigation";
import { auth } from "@/auth";
import { ChatApp } from "./chat-app";

export const dynamic = "force-dynamic";

export default async function ChatPage({ params }: { params: Promise<{ id: string }> }) {
  const session = await auth();
  if (!session?.user) redirect("/");
  const { id } = await params;
  // Read at request time, so one build serves both deployments: "" = the API on this origin
  // (rewrites), or the API's own origin (CORS, cookies of the same site).
  const apiBase = (process.env.CHATWITHME_PUBLIC_API_URL ?? "").replace(/\/$/, "");
  return <ChatApp apiBase={apiBase} chatId={id} email={session.user.email ?? ""} />;
}
