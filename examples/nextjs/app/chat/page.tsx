import { redirect } from "next/navigation";
import { auth } from "@/auth";

export const dynamic = "force-dynamic";

// A new chat: the AI SDK's chat id is made here and becomes the API's conversation id.
export default async function NewChat() {
  if (!(await auth())?.user) redirect("/");
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  redirect(`/chat/${Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("")}`);
}
