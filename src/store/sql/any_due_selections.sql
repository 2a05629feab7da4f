SELECT EXISTS (SELECT 1 FROM preference_selections WHERE expire_time <= $1) AS due
