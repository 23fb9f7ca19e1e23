grep -qx /usr/sbin/sftpd-wrapper /etc/shells || echo /usr/sbin/sftpd-wrapper >> /etc/shells
install -d -m 0750 /var/lib/sftpd-wrapper
